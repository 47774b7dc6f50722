#!/bin/sh
# The server's Hetzner firewall, enforced on its public interface (eth0) before Docker's NAT sees a packet: lines of
# `<tcp|udp|icmp> <port|from-to|-> <IPv4 CIDR>` allow; everything else coming in is dropped, except replies. No file
# means no firewall applied: all open, as on Hetzner. IPv6 rules are not enforced (the sandbox has no IPv6).
set -eu
rules=${1:-/var/lib/cloud/seed/nocloud/firewall.rules}
iptables -t mangle -N QCLOUD-FW 2>/dev/null || iptables -t mangle -F QCLOUD-FW
iptables -t mangle -C PREROUTING -i eth0 -j QCLOUD-FW 2>/dev/null || iptables -t mangle -A PREROUTING -i eth0 -j QCLOUD-FW
[ -f "$rules" ] || exit 0
iptables -t mangle -A QCLOUD-FW -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
while read -r proto port source; do
  [ -n "$proto" ] || continue
  case "$proto" in
    icmp) iptables -t mangle -A QCLOUD-FW -p icmp -s "$source" -j RETURN ;;
    *) iptables -t mangle -A QCLOUD-FW -p "$proto" -s "$source" --dport "$(echo "$port" | tr - :)" -j RETURN ;;
  esac
done <"$rules"
iptables -t mangle -A QCLOUD-FW -j DROP
