#!/usr/bin/env bash
# Installs what Astral Boot's tests, lab and benchmarks need on a fresh Debian machine
# (root, node, apt). Idempotent: quick when everything is already there.
set -euo pipefail

if ! command -v deno >/dev/null 2>&1; then
  echo "setup: installing deno from npm" >&2
  npm install -g deno >/dev/null 2>&1
fi

# Package daemons (tftpd-hpa, dnsmasq, nginx, kea-dhcp4-server) must never start in the host's network
# namespace: tests run them only inside namespaces they create.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi

# busybox-static (for the lab initramfs) conflicts with udhcpc's busybox, so the lab fetches
# it with apt-get download instead; atftpd (the TFTP bench's windowsize reference) conflicts with
# tftpd-hpa, so it is unpacked into .cache/atftpd below and only its libraries (libwrap0,
# libpcre2-8-0) are installed. chromium runs the dashboard
# test (headless, in a namespace); isc-dhcp-relay the relayed-subnet test. systemd
# (systemd-analyze, systemd-sysusers) and strace check the service unit and its system call filter;
# nothing here starts systemd. The ARM64 lab row runs qemu-system-aarch64 with AAVMF
# (qemu-efi-aarch64) and boots shim, GRUB and a kernel from debian-installer-12-netboot-arm64
# (Architecture: all). The UEFI install-once lab builds its disk's EFI app with grub-mkimage
# (grub-efi-amd64-bin) on a FAT partition (dosfstools, mtools).
packages=(qemu-system-x86 ipxe ovmf udhcpc isc-dhcp-client isc-dhcp-relay tftp-hpa atftp curl
  tshark tcpdump dnsmasq bind9-dnsutils tftpd-hpa nftables iproute2 iputils-ping cpio xz-utils wrk
  nginx procps kea-admin kea-dhcp4-server debian-installer-12-netboot-amd64 chromium systemd strace
  libwrap0 libpcre2-8-0 qemu-system-arm qemu-efi-aarch64 debian-installer-12-netboot-arm64
  grub-efi-amd64-bin mtools dosfstools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# atftpd for the TFTP bench: apt-get download + dpkg-deb -x into the cache, once.
deno run --allow-all "$(dirname "$0")/bench/atftpd.ts" >/dev/null
