#!/usr/bin/env bash
# Installs the Debian 12 packages tern needs, only those missing.
#   packaging/deps.sh build   - to build ternd and ternctl
#   packaging/deps.sh test    - to build and run the test suite
#   packaging/deps.sh bench   - to run bench/ (adds Postfix for smtp-source/smtp-sink)
set -euo pipefail

build=(build-essential cmake pkg-config libuv1-dev libunbound-dev libssl-dev libspdlog-dev
       libyaml-cpp-dev doctest-dev libcrypt-dev libsystemd-dev libcurl4-openssl-dev dns-root-data)
# Postfix is a test peer too (the TLS interop scenario runs a private instance on loopback).
# nsd and ldnsutils serve and sign the DNSSEC test zones; debhelper, lintian, scdoc, fakeroot and
# dpkg-dev build and check the Debian packages.
test=(python3 python3-aiosmtpd python3-dnslib python3-cryptography swaks libnet-ssleay-perl openssl util-linux
      postfix nsd ldnsutils scdoc debhelper lintian fakeroot dpkg-dev)
bench=(procps)

want=("${build[@]}")
case "${1:-build}" in
  build) ;;
  test) want+=("${test[@]}") ;;
  bench) want+=("${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# Daemon packages (Postfix, NSD) must neither configure nor start a system service: the tests and
# bench run private instances on loopback. debconf says "No configuration", and a
# policy-rc.d that refuses every start (exit 101) is in place for the install only.
echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
policy=/usr/sbin/policy-rc.d
own_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  own_policy=yes
fi
cleanup() { [ "$own_policy" = yes ] && "${sudo[@]}" rm -f "$policy"; }
trap cleanup EXIT
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
