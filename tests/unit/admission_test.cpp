// Unit tests for inbound connection admission (server/server.hpp admission_refusal) and the
// config switch that applies the per-client limit to relay-network clients.
#include <doctest/doctest.h>

#include <string>

#include "config/config.hpp"
#include "server/server.hpp"

using namespace tern;

TEST_CASE("admission: relay-network clients are exempt from the per-client limit by default") {
  config::Limits lim;
  lim.max_connections = 300;
  lim.max_connections_per_client = 50;
  // The case: a local application opening 200 connections from 127.0.0.1.
  for (uint32_t open = 0; open < 200; ++open) CHECK(server::admission_refusal(lim, open, open, true) == nullptr);
  // Others are limited as before.
  CHECK(server::admission_refusal(lim, 49, 49, false) == nullptr);
  CHECK(std::string(server::admission_refusal(lim, 50, 50, false)) == "Error: too many connections from your address");
  // The total limit holds for everyone.
  CHECK(std::string(server::admission_refusal(lim, 300, 10, true)) == "Error: too many connections");
  // The switch applies the per-client limit to relay-network clients too.
  lim.per_client_limit_for_relay = true;
  CHECK(server::admission_refusal(lim, 49, 49, true) == nullptr);
  CHECK(std::string(server::admission_refusal(lim, 50, 50, true)) == "Error: too many connections from your address");
}

TEST_CASE("config: limits.relay_networks_per_client_limit") {
  const std::string head = "queue_dir: /q\nhostname: mx.example\n";
  auto d = config::load_string(head, "t.yaml");
  REQUIRE(d.ok());
  CHECK_FALSE(d->limits.per_client_limit_for_relay);
  auto a = config::load_string(head + "limits:\n  relay_networks_per_client_limit: apply\n", "t.yaml");
  REQUIRE(a.ok());
  CHECK(a->limits.per_client_limit_for_relay);
  auto e = config::load_string(head + "limits:\n  relay_networks_per_client_limit: exempt\n", "t.yaml");
  REQUIRE(e.ok());
  CHECK_FALSE(e->limits.per_client_limit_for_relay);
  auto bad = config::load_string(head + "limits:\n  relay_networks_per_client_limit: yes\n", "t.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("relay_networks_per_client_limit") != std::string::npos);
}
