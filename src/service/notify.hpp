// Telling systemd how the service is doing (sd_notify(3)): READY=1 once the listeners are
// bound and the queue is loaded, RELOADING=1/READY=1 around a SIGHUP, STOPPING=1, STATUS=
// lines, and watchdog pings. Every call is a no-op outside systemd (no NOTIFY_SOCKET).
#pragma once

#include <cstdint>
#include <string>

namespace tern::service {

void notify_ready(const std::string& status);
void notify_reloading();
void notify_stopping();
void notify_status(const std::string& status);
void notify_watchdog();
// The watchdog interval systemd expects pings within (WatchdogSec=), in microseconds; 0
// when the watchdog is off.
uint64_t watchdog_interval_us();

}  // namespace tern::service
