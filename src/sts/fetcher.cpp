// The HTTPS policy fetch: one libcurl easy handle per fetch, on a worker thread.
#include "sts/fetcher.hpp"

#include <curl/curl.h>

#include <optional>

#include "common/strings.hpp"
#include "sts/policy.hpp"

namespace tern::sts {

namespace {

// Fetches waiting for a worker besides those running; more fail at once ("try later").
constexpr size_t kMaxQueuedFetches = 64;

struct Body {
  std::string data;
  bool too_big = false;
};

// libcurl 7.88 does not stop a transfer at CURLOPT_MAXFILESIZE when the server sends no
// Content-Length: the cap is applied here, and returning short aborts the transfer.
size_t on_write(char* p, size_t size, size_t n, void* ud) noexcept {
  auto* b = static_cast<Body*>(ud);
  const size_t len = size * n;
  if (b->data.size() + len > kMaxPolicySize) {
    b->too_big = true;
    return 0;
  }
  try {
    b->data.append(p, len);
  } catch (...) {
    return 0;
  }
  return len;
}

int on_progress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
  return static_cast<const std::atomic<bool>*>(ud)->load() ? 1 : 0;
}

struct CurlFree {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
struct ListFree {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};

// RFC 8461 §3.3 says text/plain; parameters (a charset) may follow.
bool is_text_plain(const char* ct) {
  if (ct == nullptr) return false;
  const std::string_view v = trim(ct);
  if (!istarts_with(v, "text/plain")) return false;
  return v.size() == 10 || v[10] == ';' || v[10] == ' ' || v[10] == '\t';
}

}  // namespace

Result<std::string> fetch_blocking(const FetchRequest& req, const std::atomic<bool>& cancel) {
  const std::string host = "mta-sts." + req.domain;
  if (req.addresses.empty()) return Error::temp("no address for " + host);
  std::unique_ptr<CURL, CurlFree> c(curl_easy_init());
  if (!c) return Error::temp("cannot create a libcurl handle");
  const std::string port = std::to_string(req.port);
  // RFC 8461 §3.3: https://mta-sts.DOMAIN/.well-known/mta-sts.txt (the port differs only in
  // test set-ups).
  const std::string url =
      "https://" + host + (req.port == 443 ? "" : ":" + port) + "/.well-known/mta-sts.txt";
  // The addresses tern's own resolver found, so curl makes no DNS query of its own.
  std::string resolve = host + ":" + port + ":";
  for (size_t i = 0; i < req.addresses.size(); ++i) {
    const auto& a = req.addresses[i];
    resolve += (i ? "," : "") + (a.v6 ? "[" + a.str() + "]" : a.str());
  }
  std::unique_ptr<curl_slist, ListFree> resolve_list(curl_slist_append(nullptr, resolve.c_str()));
  if (!resolve_list) return Error::temp("out of memory");
  Body body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* h = c.get();
  const long timeout = long(req.timeout.count());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_RESOLVE, resolve_list.get());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);  // §3.3: redirects are not followed
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");        // the policy host itself, never a proxy
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);        // threads: no SIGALRM for timeouts
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
  curl_easy_setopt(h, CURLOPT_SSLVERSION, long(CURL_SSLVERSION_TLSv1_2));
  // §3.3: the certificate must be PKIX-valid for mta-sts.DOMAIN.
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!req.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, req.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_USERAGENT, "tern (MTA-STS)");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &cancel);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  const CURLcode rc = curl_easy_perform(h);
  if (body.too_big) return Error::perm("policy body over 64 KiB: transfer cut off");
  if (cancel.load()) return Error::temp("fetch cancelled (shutting down)");
  if (rc != CURLE_OK)
    return Error::temp(url + ": " + (errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc))));
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    const bool redirect = status >= 300 && status < 400;
    return Error::perm(url + ": HTTP status " + std::to_string(status) +
                       (redirect ? " (redirects are not followed, RFC 8461 §3.3)" : " (only 200 is accepted)"));
  }
  const char* ct = nullptr;
  curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
  if (!is_text_plain(ct))
    return Error::perm(url + ": Content-Type " + (ct ? std::string(ct) : "missing") + " is not text/plain");
  return std::move(body.data);
}

Fetcher::Fetcher(io::Loop& loop, unsigned threads)
    : loop_(loop),
      pool_(std::make_unique<io::WorkerPool>(loop, threads, kMaxQueuedFetches)),
      refusal_(std::make_unique<io::Timer>(loop)) {
  // Not thread-safe: done once, here, while no worker has begun a transfer.
  static const bool global = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)global;
}

Fetcher::~Fetcher() {
  cancel_->store(true);
  pool_.reset();  // joins the workers; a transfer notices `cancel_` at its next progress call
  refusal_.reset();
}

void Fetcher::fetch(FetchRequest req, std::function<void(Result<std::string>)> done) {
  struct Job {
    FetchRequest req;
    std::optional<Result<std::string>> result;
  };
  auto job = std::make_shared<Job>(Job{std::move(req), std::nullopt});
  auto cancel = cancel_;
  const bool queued = pool_->submit([job, cancel] { job->result = fetch_blocking(job->req, *cancel); },
                                    [job, done] {
                                      if (!job->result) return done(Error::temp("fetch did not run"));
                                      done(std::move(*job->result));
                                    });
  if (queued) return;
  refused_.push_back([done] { done(Error::temp("too many policy fetches at once")); });
  refusal_->start(0, 0, [this] {
    auto r = std::move(refused_);
    refused_.clear();
    for (auto& f : r) f();
  });
}

}  // namespace tern::sts
