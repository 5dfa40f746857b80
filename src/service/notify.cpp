// sd_notify through libsystemd.
#include "service/notify.hpp"

#include <systemd/sd-daemon.h>

#include <ctime>

namespace tern::service {

namespace {
void send(const std::string& text) {
  // unset_environment = 0: the variables stay for later notifications (RELOADING, STOPPING).
  (void)sd_notify(0, text.c_str());
}

// RELOADING=1 must carry MONOTONIC_USEC= for systemd 253+ (Type=notify-reload); harmless
// before.
std::string monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000);
}
}  // namespace

void notify_ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }
void notify_reloading() { send("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec() + "\nSTATUS=reloading the configuration"); }
void notify_stopping() { send("STOPPING=1\nSTATUS=stopping: finishing transactions in flight"); }
void notify_status(const std::string& status) { send("STATUS=" + status); }
void notify_watchdog() { send("WATCHDOG=1"); }

uint64_t watchdog_interval_us() {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

}  // namespace tern::service
