# Sourced by the build_*_tsan.sh scripts: makes Debian's source packages reachable
# (Debian's archive is the only reachable source of the sources). Adds bookworm deb-src
# entries when the machine has none, then refreshes the package lists.
ensure_debian_sources() {
  local list=/etc/apt/sources.list.d/moe-debian-src.sources
  if ! grep -rqs '^\(Types: deb-src\|deb-src\)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat >"$list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
}
