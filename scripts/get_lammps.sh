#!/usr/bin/env bash
# Provide a LAMMPS build the KLAY plugin can be compiled against and loaded into.
#
#   scripts/get_lammps.sh            # Debian's LAMMPS 4 Feb 2025 source, built once into a cache
#   scripts/get_lammps.sh 29Sep2021  # the older stable release the plugin is also tested against
#   LAMMPS_SOURCE_DIR=/my/lammps scripts/get_lammps.sh   # build a tree you already have
#
# Releases (the argument, default 4Feb2025), each from a Debian suite's LAMMPS source package:
#   4Feb2025   LAMMPS 4 Feb 2025 (Debian trixie): the build the project develops against
#   29Sep2021  LAMMPS stable 29 Sep 2021 update 2 (Debian bookworm, 20220106.git7586adbb6a):
#              what HPC centres still run; built with only the packages its tests need
#
# The build lives outside the work tree, in
#   ${KLAY_LAMMPS_CACHE:-~/.cache/klay-lammps}/lammps-<version>-<hash of the cmake options>/
# with src/ (the LAMMPS source tree), build/ (liblammps.so, lmp) and a stamp file written
# only after a complete build. A second run finds the stamp, does nothing and prints the paths.
# The last lines of output are machine-readable:
#   LAMMPS_SOURCE_DIR=...   LAMMPS_BUILD_DIR=...
# ready for `cmake -DKLAY_WITH_LAMMPS=ON -DLAMMPS_SOURCE_DIR=... -DLAMMPS_BUILD_DIR=...`.
#
# Environment: LAMMPS_SOURCE_DIR (optional), KLAY_LAMMPS_CACHE (cache root),
# KLAY_LAMMPS_JOBS (parallel compile jobs, default 2: the build machines are shared).
set -euo pipefail

release="${1:-4Feb2025}"
jobs="${KLAY_LAMMPS_JOBS:-2}"
cache_root="${KLAY_LAMMPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klay-lammps}"

# PLUGIN: `plugin load` and LAMMPS_PLUGIN_PATH.
common_options=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_MPI=on
  -DBUILD_SHARED_LIBS=on
  -DPKG_PLUGIN=on
)
case "$release" in
  4Feb2025)
    debian_suite=trixie
    debian_version_wanted="20250204"
    # MANYBODY, ML-SNAP, EXTRA-COMPUTE: reference potentials and analysis used next to KLay
    # models (zbl and the table styles are in core). KIM: `kim init` / `pair_style kim` for KLay
    # models through the OpenKIM driver in kim/, against Debian's libkim-api-dev (DOWNLOAD_KIM=off:
    # nothing is fetched at build time).
    # No LAMMPS_EXCEPTIONS: since 2 Aug 2023 LAMMPS always throws, the option is gone.
    release_options=(-DPKG_MANYBODY=on -DPKG_ML-SNAP=on -DPKG_EXTRA-COMPUTE=on -DPKG_KIM=on -DDOWNLOAD_KIM=off)
    ;;
  29Sep2021)
    debian_suite=bookworm
    debian_version_wanted="20220106"   # stable_29Sep2021_update2
    # Only what the plugin's tests need there (zbl is in core), to keep this second cold build
    # short. LAMMPS_EXCEPTIONS stays at this release's default, off, as Debian builds it: with it
    # on, lmp's main() answers error->one with MPI_Abort without flushing the screen, so the
    # message of an error on one rank is lost when the output goes to a file or a pipe.
    release_options=()
    ;;
  *)
    printf 'get_lammps: error: unknown LAMMPS release %s (known: 4Feb2025, 29Sep2021)\n' "$release" >&2
    exit 1
    ;;
esac
cmake_options=(
  "${common_options[@]}"
  "${release_options[@]}"
  -DWITH_JPEG=off -DWITH_PNG=off -DWITH_FFMPEG=off -DWITH_GZIP=off
)
if command -v ccache >/dev/null; then
  cmake_options+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

say() { printf 'get_lammps: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

options_hash=$(printf '%s\n' "${cmake_options[@]}" | md5sum | cut -c1-10)

# Fetch the Debian suite's source package with a private apt configuration (one per suite): the
# system's sources, lists and caches stay untouched. Prints the path of the verified tarball.
fetch_debian_source() {
  local apt_dir="$cache_root/apt-$debian_suite"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.d" \
           "$cache_root/download"
  local debian_uri
  debian_uri=$(grep -hsE '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources | head -n1 | awk '{print $2}')
  debian_uri="${debian_uri:-http://deb.debian.org/debian}"
  cat >"$apt_dir/sources.d/$debian_suite-src.sources" <<EOF
Types: deb-src
URIs: $debian_uri
Suites: $debian_suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local apt_options=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources.d"
                     -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  say "apt-get update (private configuration in $apt_dir)"
  apt-get "${apt_options[@]}" update >&2 || die "apt-get update of $debian_suite sources failed"

  local showsrc version orig_name orig_md5
  showsrc=$(apt-cache "${apt_options[@]}" showsrc lammps) || die "apt-cache showsrc lammps failed"
  version=$(awk '/^Version:/ {print $2}' <<<"$showsrc" | grep "^$debian_version_wanted" | head -n1)
  [[ -n "$version" ]] || die "$debian_suite has no lammps $debian_version_wanted* source (found: $(awk '/^Version:/ {print $2}' <<<"$showsrc" | tr '\n' ' '))"
  # The Files: section lists "md5 size name"; take the upstream tarball.
  read -r orig_md5 _ orig_name < <(awk '/^Files:/ {f=1; next} /^[^ ]/ {f=0} f && $3 ~ /\.orig\.tar\./ {print $1, $2, $3; exit}' <<<"$showsrc")
  [[ -n "$orig_name" ]] || die "apt-cache showsrc lists no .orig tarball for lammps $version"

  local tarball="$cache_root/download/$orig_name"
  if [[ ! -f "$tarball" ]] || [[ "$(md5sum <"$tarball" | cut -d' ' -f1)" != "$orig_md5" ]]; then
    say "downloading lammps=$version source ($orig_name)"
    # The .dsc of trixie's package answers 404 on the mirror, so apt-get fails after fetching
    # the tarball; the md5 check below is what decides whether the download is usable.
    (cd "$cache_root/download" &&
       apt-get "${apt_options[@]}" source --download-only "lammps=$version" >&2) ||
      say "apt-get source reported an error (expected: the .dsc is missing); checking the tarball"
  fi
  [[ -f "$tarball" ]] || die "$orig_name was not downloaded"
  [[ "$(md5sum <"$tarball" | cut -d' ' -f1)" == "$orig_md5" ]] ||
    die "$orig_name: md5 does not match $orig_md5 from apt-cache showsrc"
  say "verified $orig_name (md5 $orig_md5)"
  printf '%s\n' "$tarball"
}

if [[ -n "${LAMMPS_SOURCE_DIR:-}" ]]; then
  source_dir=$(cd "$LAMMPS_SOURCE_DIR" && pwd)
  [[ -f "$source_dir/cmake/CMakeLists.txt" && -f "$source_dir/src/version.h" ]] ||
    die "LAMMPS_SOURCE_DIR=$source_dir is not a LAMMPS source tree (no cmake/CMakeLists.txt or src/version.h)"
  version=$(sed -n 's/^#define LAMMPS_VERSION "\(.*\)"/\1/p' "$source_dir/src/version.h" | tr -d ' ')
  source_hash=$(printf '%s' "$source_dir" | md5sum | cut -c1-6)
  install_dir="$cache_root/lammps-${version}-user${source_hash}-${options_hash}"
else
  install_dir="$cache_root/lammps-${debian_version_wanted}-${options_hash}"
  source_dir="$install_dir/src"
fi
build_dir="$install_dir/build"
stamp="$install_dir/build.stamp"

report() {
  say "LAMMPS source: $source_dir"
  say "LAMMPS build:  $build_dir (lmp, liblammps.so)"
  printf 'LAMMPS_SOURCE_DIR=%s\nLAMMPS_BUILD_DIR=%s\n' "$source_dir" "$build_dir"
}

# One build per cache directory at a time: a second run (another work tree, another shell) waits
# for the first and then finds its stamp.
mkdir -p "$install_dir"
exec 9>"$install_dir.lock"
if ! flock -n 9; then
  say "waiting for another build of $install_dir to finish"
  flock 9
fi

if [[ -f "$stamp" && -x "$build_dir/lmp" ]]; then
  say "already built ($(cat "$stamp"))"
  report
  exit 0
fi

if [[ -z "${LAMMPS_SOURCE_DIR:-}" && ! -f "$source_dir/src/version.h" ]]; then
  tarball=$(fetch_debian_source)
  say "unpacking into $source_dir"
  rm -rf "$source_dir" "$install_dir/unpack"
  mkdir -p "$install_dir/unpack"
  tar -xJf "$tarball" -C "$install_dir/unpack"
  top=$(find "$install_dir/unpack" -mindepth 1 -maxdepth 1 -type d | head -n1)
  [[ -f "$top/src/version.h" ]] || die "unexpected layout of $tarball"
  mv "$top" "$source_dir"
  rmdir "$install_dir/unpack"
fi

say "configuring (options: ${cmake_options[*]})"
cmake -S "$source_dir/cmake" -B "$build_dir" "${cmake_options[@]}" >&2

start=$(date +%s)
say "building LAMMPS $release with $jobs jobs (nice 10); a cold build takes minutes to half an hour on 2 cores"
nice -n 10 cmake --build "$build_dir" -j "$jobs" >&2
elapsed=$(( $(date +%s) - start ))

printf 'lammps %s, options %s, built in %d s on %s\n' \
  "$(sed -n 's/^#define LAMMPS_VERSION "\(.*\)"/\1/p' "$source_dir/src/version.h")" \
  "$options_hash" "$elapsed" "$(date -Iseconds)" >"$stamp"
say "built in $elapsed s"
report
