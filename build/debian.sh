# Shared by build/setup.sh and build/pytorch-trixie.sh (source it; it defines functions only).

# The mirror of the machine's own Debian sources (deb822 or one-line format) for a suite matching SUITES (an awk
# regular expression, default bookworm), security archives excluded; never a hard-coded host. Empty when none.
debian_mirror() {
  local suites="${1:-bookworm}" uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk -v s="($suites)( |\$)" '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ s && $0 !~ /security/) {print u; exit} }' \
          /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk -v s="$suites" '$1=="deb" && $0 !~ /security/ && $0 ~ s {for(i=2;i<=NF;i++) if ($i ~ /^(https?|file|ftp):/) {print $i; exit}}' \
          /etc/apt/sources.list)
  fi
  echo "$uri"
}
