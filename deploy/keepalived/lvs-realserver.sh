#!/bin/sh
# LVS-DR real server setup for the proxy hosts: hold the VIP on lo without answering ARP for
# it, so that only the keepalived MASTER owns it on the network. Run at boot on codis123 and
# codis124 (e.g. from a oneshot unit before keepalived). `stop` undoes it.
VIP=192.168.188.131
case "$1" in
start)
    ip addr add "$VIP/32" dev lo label lo:vip 2>/dev/null || true
    sysctl -q -w net.ipv4.conf.lo.arp_ignore=1 net.ipv4.conf.lo.arp_announce=2
    sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    ;;
stop)
    ip addr del "$VIP/32" dev lo 2>/dev/null || true
    sysctl -q -w net.ipv4.conf.lo.arp_ignore=0 net.ipv4.conf.lo.arp_announce=0
    sysctl -q -w net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.all.arp_announce=0
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
