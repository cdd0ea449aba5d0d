# shellcheck shell=bash
# The Debian packages cancelkit's scripts need, in one place, and the helper
# that installs the missing ones. Sourced by scripts/test, scripts/verify, ...

# Build and test: compilers, CMake, GoogleTest/GoogleMock, the sanitizer
# runtimes (g++'s libtsan2/libasan8/libubsan1, clang's libclang-rt-14-dev), and
# what the other suites need (the presets' CANCELKIT_REQUIRE_TEST_DEPS makes a
# missing one a configure error; plain consumers skip the suite):
# Google Benchmark (bench/), RapidCheck (property_tests/), Relacy (stress/);
# rsync + patch for scripts/mutate (the release preset's mutation.quick test runs it);
# python3 + python3-yaml for the ci/ tests (outputs, workflows).
CANCELKIT_PACKAGES=(
  g++ clang cmake make
  libgtest-dev libgmock-dev googletest
  libtsan2 libasan8 libubsan1 libclang-rt-14-dev
  libbenchmark-dev librapidcheck-dev relacy-dev
  rsync patch
  python3 python3-yaml
)

# Prints the packages from "$@" that are not installed.
cancelkit_missing_packages() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || printf '%s\n' "$pkg"
  done
}

# Installs the packages from "$@" that are missing: with apt-get when running
# as root, otherwise prints the command to run and returns 1.
cancelkit_ensure_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "packages: dpkg-query not found (not Debian?); not checking for: $*" >&2
    return 0
  fi
  local missing
  mapfile -t missing < <(cancelkit_missing_packages "$@")
  if ((${#missing[@]} == 0)); then
    echo "packages: all ${#} required Debian packages are installed"
    return 0
  fi
  echo "packages: missing: ${missing[*]}"
  if ((EUID != 0)); then
    echo "packages: not root; install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    return 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}
