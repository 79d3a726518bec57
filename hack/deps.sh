#!/usr/bin/env bash
# Installs what pgkube's cri agent and its tests need on a Debian machine:
# containerd and runc run the pods, busybox-static is what the tests (and
# `pgkube image busybox`) build their images from, as no registry may be
# reachable. Does nothing when all are there; needs root (or sudo) else.
set -euo pipefail
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
	missing+=(busybox-static)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
	echo "pgkube: please install ${missing[*]} (the cri agent and its tests need them)" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "pgkube: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
