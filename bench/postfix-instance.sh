#!/usr/bin/env bash
# A private Postfix for side-by-side measurements: its own config and queue under $1, SMTP on
# 127.0.0.1:$2, everything relayed to [127.0.0.1]:$3 with no DNS. Default durability (cleanup
# fsyncs each queue file before the 250). The system's Postfix is never touched.
#   postfix-instance.sh DIR LISTEN_PORT RELAY_PORT start|stop
# With TLS_CERT and TLS_KEY set (PEM files), smtpd offers STARTTLS with them (security level
# may) and a tlsmgr runs, which issues the keys for TLS session tickets (resumption).
set -euo pipefail
dir=$1 port=$2 relay=$3 action=$4
etc=$dir/etc
case "$action" in
  start)
    mkdir -p "$etc" "$dir/spool" "$dir/data" "$dir/log"
    chown postfix:postfix "$dir/data"
    chmod 755 "$dir" "$dir/spool"
    cat > "$etc/main.cf" <<CF
compatibility_level = 3.6
config_directory = $etc
queue_directory = $dir/spool
data_directory = $dir/data
maillog_file = $dir/log/maillog
maillog_file_prefixes = $dir
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.example
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$relay
smtp_dns_support_level = disabled
smtp_host_lookup = native
CF
    if [ -n "${TLS_CERT:-}" ]; then
      cat >> "$etc/main.cf" <<CF
smtpd_tls_cert_file = $TLS_CERT
smtpd_tls_key_file = $TLS_KEY
smtpd_tls_security_level = may
CF
    fi
    # Non-chrooted services (the stock Debian master.cf chroots, which needs /etc copies).
    {
      echo "127.0.0.1:$port inet n - n - - smtpd"
      for svc in "pickup unix n - n 60 1 pickup" "cleanup unix n - n - 0 cleanup" \
                 "qmgr unix n - n 300 1 qmgr" "rewrite unix - - n - - trivial-rewrite" \
                 "bounce unix - - n - 0 bounce" "defer unix - - n - 0 bounce" \
                 "trace unix - - n - 0 bounce" "verify unix - - n - 1 verify" \
                 "flush unix n - n 1000? 0 flush" "proxymap unix - - n - - proxymap" \
                 "smtp unix - - n - - smtp" "relay unix - - n - - smtp" \
                 "showq unix n - n - - showq" "error unix - - n - - error" \
                 "retry unix - - n - - error" "discard unix - - n - - discard" \
                 "local unix - n n - - local" "lmtp unix - - n - - lmtp" \
                 "anvil unix - - n - 1 anvil" "scache unix - - n - 1 scache" \
                 "postlog unix-dgram n - n - 1 postlogd" "tlsmgr unix - - n 1000? 1 tlsmgr"; do
        echo "$svc"
      done
    } > "$etc/master.cf"
    postfix -c "$etc" check >/dev/null 2>&1 || true
    postfix -c "$etc" start >/dev/null 2>&1
    ;;
  stop)
    postfix -c "$etc" stop >/dev/null 2>&1 || true
    ;;
esac
