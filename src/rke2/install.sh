#!/bin/sh
# kubelet-lxc installer (POSIX sh: dash, busybox ash, bash), for nodes with or without Node.js.
# The one installer: `kubelet-lxc install` runs this script too.
#
#   sh install.sh [--root DIR] BUNDLE.tar.gz    install (BUNDLE.tar.gz.sha256 must be beside it)
#   sh install.sh [--root DIR] --rollback       restore what the last install replaced
#
# Needs: tar, gzip, dd, sha256sum, cmp, mktemp and the usual file tools (coreutils or busybox).
# Targets are confined to /usr/local/lib/kubelet-lxc/ and /etc/rancher/rke2/config.yaml.d/, nothing
# is written through a symlink leading out of --root, and one install or rollback runs at a time
# per root (the lock var/lib/kubelet-lxc/install.lock).
set -eu

PROG='kubelet-lxc install'
ROOT=/
ROLLBACK=0
BUNDLE=
STAGING=
STATE_REL=/var/lib/kubelet-lxc/rollback
LOCK_REL=/var/lib/kubelet-lxc/install.lock
KUBELET_ROOT=/usr/local/lib/kubelet-lxc
DROPIN_DIR=/etc/rancher/rke2/config.yaml.d
LOCKED=0
# folders made for the lock, and folders a rollback leaves to remove once the lock is gone
LOCK_DIRS=
DEFER_DIRS=

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() {
	cat <<'USAGE'
usage: sh install.sh [--root DIR] BUNDLE.tar.gz
       sh install.sh [--root DIR] --rollback
Installs the kubelet of a kubelet-lxc bundle and its RKE2 config drop-in (kubelet-path),
after checking BUNDLE.tar.gz.sha256, the bundle's SHA256SUMS and `kubelet --version`.
What it replaces is kept; --rollback puts it back. --root installs below DIR instead of /.
USAGE
}

cleanup() {
	if [ -n "$STAGING" ]; then rm -rf "$STAGING"; fi
	if [ "$LOCKED" = 1 ]; then
		# only our own lock: a stale-lock takeover by another run must not be undone
		if [ "$(sed -n 's/^pid=//p' "$LOCK" 2>/dev/null)" = "$$" ]; then rm -f "$LOCK"; fi
		printf '%s\n' "$DEFER_DIRS" "$LOCK_DIRS" | awk -F/ 'NF > 1 { print NF " " $0 }' | sort -rn | cut -d' ' -f2- |
			while read -r d; do
				rmdir "$R$d" 2>/dev/null || true
			done
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

while [ $# -gt 0 ]; do
	case $1 in
		--root) [ $# -ge 2 ] || die '--root needs a directory'; ROOT=$2; shift 2 ;;
		--root=*) ROOT=${1#--root=}; shift ;;
		--rollback) ROLLBACK=1; shift ;;
		-h|--help) usage; exit 0 ;;
		--) shift; break ;;
		-*) usage >&2; die "unknown option $1" ;;
		*) [ -z "$BUNDLE" ] || die "one bundle at a time (got $BUNDLE and $1)"; BUNDLE=$1; shift ;;
	esac
done
if [ $# -gt 0 ]; then
	if [ -n "$BUNDLE" ] || [ $# -ne 1 ]; then die 'one bundle at a time'; fi
	BUNDLE=$1
fi

[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
# Paths below are absolute node paths; $R prefixes the root ("" for /).
R=${ROOT%/}
while [ "${R%/}" != "$R" ]; do R=${R%/}; done
STATE=$R$STATE_REL
LOCK=$R$LOCK_REL
REAL_ROOT=$(cd -P "$ROOT" && pwd -P)

need() {
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c is needed (install it, e.g. apt-get install coreutils tar diffutils)"
	done
}
need tar gzip dd tr wc sha256sum cmp mktemp cp mv rm mkdir rmdir chmod sed awk sort cut dirname cat readlink ln date

sha256_of() {
	sha256sum "$1" | sed 's/[[:space:]].*//'
}

# Value of KEY in an INSTALL file: one key=value a line, never evaluated.
install_value() {
	sed -n "s/^$2=//p" "$1" | sed -n 1p
}

safe_abs_path() {
	case $1 in
		/*) ;;
		*) return 1 ;;
	esac
	case $1 in
		*[!A-Za-z0-9._+/-]*|*/../*|*/..|*/./*|*//*) return 1 ;;
	esac
	return 0
}

# Refuse a node folder whose deepest existing part resolves outside the root (a symlink inside
# --root pointing out of it): nothing is written through it.
assert_inside_root() {
	_d=$1
	while [ "$_d" != / ] && [ ! -e "$R$_d" ] && [ ! -L "$R$_d" ]; do _d=$(dirname "$_d"); done
	_real=$(cd -P "$R$_d" 2>/dev/null && pwd -P) || _real=
	[ "$REAL_ROOT" = / ] && [ -n "$_real" ] && return 0
	case $_real in
		"$REAL_ROOT" | "$REAL_ROOT"/*) ;;
		*) die "$1 leads out of --root $ROOT through a symbolic link ($_d -> ${_real:-a dangling link}): refusing to write there" ;;
	esac
}

# The lock: key=value lines written with O_EXCL (set -C); a lock whose process is gone (same
# host, no /proc/<pid>) is taken over, saying so.
take_lock() {
	assert_inside_root "$(dirname "$LOCK_REL")"
	LOCK_DIRS=$(missing_dirs "$(dirname "$LOCK_REL")")
	mkdir -p "$(dirname "$LOCK")"
	_host=$(cat /proc/sys/kernel/hostname 2>/dev/null || uname -n)
	_tries=0
	while [ "$_tries" -lt 3 ]; do
		_tries=$((_tries + 1))
		if (set -C && printf 'pid=%s\nhost=%s\nsince=%s\ncommand=%s\n' "$$" "$_host" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >"$LOCK") 2>/dev/null; then
			LOCKED=1
			return 0
		fi
		[ -e "$LOCK" ] || continue
		_pid=$(sed -n 's/^pid=//p' "$LOCK" | sed -n 1p)
		_h=$(sed -n 's/^host=//p' "$LOCK" | sed -n 1p)
		case $_pid in
			''|*[!0-9]*) die "--root $ROOT is locked by $LOCK, which cannot be read as a lock: if no other install runs, remove it" ;;
		esac
		if [ "$_h" = "$_host" ] && [ ! -d "/proc/$_pid" ]; then
			say "removing a stale lock of pid $_pid on $_h (the process is gone): $LOCK"
			rm -f "$LOCK"
			continue
		fi
		die "--root $ROOT is in use by pid $_pid on $_h since $(sed -n 's/^since=//p' "$LOCK" | sed -n 1p) ($(sed -n 's/^command=//p' "$LOCK" | sed -n 1p)): another install or rollback runs there: wait for it to finish"
	done
	die "cannot take the lock $LOCK: it keeps changing hands"
}

# Copy SRC to DEST through a temp file in DEST's folder and a rename: readers see the old file or
# the new one, never a partial one.
atomic_copy() {
	_src=$1; _dest=$2; _mode=$3
	mkdir -p "$(dirname "$_dest")"
	_tmp="$_dest.kubelet-lxc-tmp.$$"
	rm -f "$_tmp"
	cp "$_src" "$_tmp"
	chmod "$_mode" "$_tmp"
	mv -f "$_tmp" "$_dest"
}

# Put a backup back the same way, keeping the backup's mode.
atomic_restore() {
	mkdir -p "$(dirname "$2")"
	_tmp="$2.kubelet-lxc-tmp.$$"
	rm -f "$_tmp"
	cp -p "$1" "$_tmp"
	mv -f "$_tmp" "$2"
}

# check_kubelet BINARY EXPECTED_VERSION ("" = any version): 0 when it runs and prints
# "Kubernetes EXPECTED_VERSION"; else prints why and returns 1.
check_kubelet() {
	if ! _out=$("$1" --version 2>&1); then
		printf '%s: error: %s --version failed: %s\n' "$PROG" "$1" "$_out" >&2
		return 1
	fi
	if [ -n "$2" ] && [ "$_out" != "Kubernetes $2" ]; then
		printf "%s: error: %s --version printed '%s', expected 'Kubernetes %s'\n" "$PROG" "$1" "$_out" "$2" >&2
		return 1
	fi
	say "$1 --version: $_out"
}

restart_hint() {
	say "next: restart RKE2 on this node to use it: systemctl restart rke2-agent (rke2-server on server nodes)"
}

# Print "TYPE NAME" for every member of an uncompressed ustar archive, read from its headers.
tar_members() {
	_f=$1
	_blocks=$(($(wc -c <"$_f") / 512))
	_n=0
	while [ "$_n" -lt "$_blocks" ]; do
		dd if="$_f" of="$STAGING/header" bs=512 skip="$_n" count=1 2>/dev/null
		_name=$(dd if="$STAGING/header" bs=1 count=100 2>/dev/null | tr -d '\000')
		[ -n "$_name" ] || break # end of archive
		_magic=$(dd if="$STAGING/header" bs=1 skip=257 count=5 2>/dev/null | tr -d '\000')
		_prefix=$(dd if="$STAGING/header" bs=1 skip=345 count=155 2>/dev/null | tr -d '\000')
		if [ "$_magic" = ustar ] && [ -n "$_prefix" ]; then _name=$_prefix/$_name; fi
		_type=$(dd if="$STAGING/header" bs=1 skip=156 count=1 2>/dev/null | tr -d '\000')
		_size=$(dd if="$STAGING/header" bs=1 skip=124 count=12 2>/dev/null | tr -d '\000 ')
		case $_size in
			''|*[!0-7]*) die "refusing $BUNDLE: entry '$_name' has a size field this installer does not read" ;;
		esac
		printf '%s %s\n' "${_type:-0}" "$_name"
		_n=$((_n + 1 + (0$_size + 511) / 512))
	done
}

# Folders (node paths) from $1 upwards that do not exist yet, deepest first.
missing_dirs() {
	_d=$1
	while [ "$_d" != / ] && [ -n "$_d" ] && [ ! -d "$R$_d" ]; do
		echo "$_d"
		_d=$(dirname "$_d")
	done
}

rollback() {
	[ -f "$STATE/entries" ] || die "nothing to roll back: $STATE/entries does not exist (no install recorded)"
	entries=$(cat "$STATE/entries")
	# Lines: KEY present|absent PATH, then "dir dir PATH" for each folder the install created.
	# The drop-in comes first so the switch back happens before the kubelet file is touched.
	while read -r key how path; do
		[ -n "$key" ] || continue
		safe_abs_path "$path" || die "bad path in $STATE/entries: $path"
		[ "$how" = dir ] || assert_inside_root "$(dirname "$path")"
		case $how in
			link)
				[ -f "$STATE/files/$key" ] || die "backup $STATE/files/$key is missing"
				_target=$(cat "$STATE/files/$key")
				_tmp="$R$path.kubelet-lxc-tmp.$$"
				rm -f "$_tmp"
				ln -s "$_target" "$_tmp"
				mv -f "$_tmp" "$R$path"
				say "restored $path (a symbolic link to $_target)"
				;;
			present)
				[ -f "$STATE/files/$key" ] || die "backup $STATE/files/$key is missing"
				atomic_restore "$STATE/files/$key" "$R$path"
				say "restored $path"
				;;
			absent)
				rm -f "$R$path"
				say "removed $path (it did not exist before the install)"
				;;
			dir) ;;
			*) die "bad line in $STATE/entries: $key $how $path" ;;
		esac
	done <<ENTRIES
$entries
ENTRIES
	rm -rf "$STATE"
	# Remove the folders the install created (if empty), deepest first; the lock's own folder
	# goes once the lock is released.
	printf '%s\n' "$entries" | sed -n 's/^dir dir //p' | awk -F/ '{ print NF " " $0 }' | sort -rn | cut -d' ' -f2- |
		while read -r d; do
			rmdir "$R$d" 2>/dev/null || true
		done
	DEFER_DIRS=$(printf '%s\n' "$entries" | sed -n 's/^dir dir //p')
	kubelet_was=$(printf '%s\n' "$entries" | sed -n 's/^kubelet present //p')
	if [ -n "$kubelet_was" ]; then check_kubelet "$R$kubelet_was" "" || say "warning: the restored kubelet does not run"; fi
	say "rolled back"
	restart_hint
}

do_install() {
	[ -n "$BUNDLE" ] || { usage >&2; die 'no bundle given'; }
	if [ -d "$BUNDLE" ]; then die "$BUNDLE is a folder, not a bundle file: give the kubelet-lxc-<version>-linux-<arch>.tar.gz"; fi
	[ -f "$BUNDLE" ] || die "bundle $BUNDLE does not exist"
	sumfile=$BUNDLE.sha256
	[ -f "$sumfile" ] || die "checksum file $sumfile is missing: download it beside the bundle"
	expected=$(sed -n '1s/[[:space:]].*//p' "$sumfile")
	case $expected in
		*[!0-9a-f]*|'') die "$sumfile does not start with a sha256 hex digest" ;;
	esac
	[ ${#expected} -eq 64 ] || die "$sumfile does not start with a sha256 hex digest"
	actual=$(sha256_of "$BUNDLE")
	[ "$actual" = "$expected" ] || die "checksum mismatch for $BUNDLE: expected $expected, got $actual (damaged or tampered with: download it again)"
	say "checksum ok: $actual"
	gzip -t "$BUNDLE" 2>/dev/null || die "$BUNDLE is not a gzip file (a bundle is the kubelet-lxc-<version>-linux-<arch>.tar.gz of a release): refusing it"

	STAGING=$(mktemp -d "${TMPDIR:-/tmp}/kubelet-lxc-install.XXXXXX")
	gzip -dc "$BUNDLE" >"$STAGING/bundle.tar" || die "cannot decompress $BUNDLE (not a tar.gz?)"
	# Refuse absolute, parent-directory, link and special entries before anything is extracted.
	# The names come from the raw headers, not from `tar -t`, which some tars (busybox) print
	# with the dangerous prefix already stripped.
	tar_members "$STAGING/bundle.tar" >"$STAGING/members"
	top=
	while read -r type name; do
		case $name in
			/*) die "refusing $BUNDLE: entry '$name' has an absolute path" ;;
			..|../*|*/..|*/../*) die "refusing $BUNDLE: entry '$name' leaves the archive's folder (..)" ;;
		esac
		case $type in
			0|5) ;;
			1|2) die "refusing $BUNDLE: entry '$name' is a link" ;;
			*) die "refusing $BUNDLE: entry '$name' is not a file or folder (type $type)" ;;
		esac
		first=${name%%/*}
		[ -n "$top" ] || top=$first
		[ "$first" = "$top" ] || die "refusing $BUNDLE: entry '$name' is outside its single top folder $top"
	done <"$STAGING/members"
	[ -n "$top" ] || die "refusing $BUNDLE: it is empty"

	mkdir "$STAGING/x"
	tar -xf "$STAGING/bundle.tar" -C "$STAGING/x"
	rm -f "$STAGING/bundle.tar"
	src=$STAGING/x/$top
	[ -f "$src/INSTALL" ] || die "refusing $BUNDLE: no $top/INSTALL (not a kubelet-lxc bundle)"
	[ "$(install_value "$src/INSTALL" format)" = 1 ] || die "$BUNDLE: unknown bundle format (newer installer needed)"
	version=$(install_value "$src/INSTALL" version)
	kubelet_path=$(install_value "$src/INSTALL" kubelet_path)
	dropin_path=$(install_value "$src/INSTALL" dropin_path)
	dropin_name=$(install_value "$src/INSTALL" dropin_file)
	case $version in
		''|*[!A-Za-z0-9._+-]*) die "$BUNDLE: bad version '$version' in INSTALL" ;;
	esac
	safe_abs_path "$kubelet_path" || die "$BUNDLE: bad kubelet_path '$kubelet_path' in INSTALL"
	safe_abs_path "$dropin_path" || die "$BUNDLE: bad dropin_path '$dropin_path' in INSTALL"
	case $dropin_name in
		''|*[!A-Za-z0-9._-]*) die "$BUNDLE: bad dropin_file '$dropin_name' in INSTALL" ;;
	esac
	case $kubelet_path in
		"$KUBELET_ROOT"/?*) ;;
		*) die "$BUNDLE: kubelet_path '$kubelet_path' in INSTALL is not under $KUBELET_ROOT/ (where kubelet-lxc installs): refusing it" ;;
	esac
	case $dropin_path in
		"$DROPIN_DIR"/*/*) die "$BUNDLE: dropin_path '$dropin_path' in INSTALL is not a .yaml file in $DROPIN_DIR/ (where RKE2 reads drop-ins): refusing it" ;;
		"$DROPIN_DIR"/?*.yaml) ;;
		*) die "$BUNDLE: dropin_path '$dropin_path' in INSTALL is not a .yaml file in $DROPIN_DIR/ (where RKE2 reads drop-ins): refusing it" ;;
	esac

	# Every file the bundle ships is listed in SHA256SUMS, with the digest it must have.
	[ -f "$src/SHA256SUMS" ] || die "$BUNDLE: no SHA256SUMS inside"
	for f in kubelet "$dropin_name" INSTALL README.md install.sh; do
		want=$(sed -n "s/^\([0-9a-f]\{64\}\)  $f\$/\1/p" "$src/SHA256SUMS")
		[ -n "$want" ] || die "$BUNDLE: $f is not listed in SHA256SUMS"
		[ -f "$src/$f" ] || die "$BUNDLE: $f is listed in SHA256SUMS but missing"
		got=$(sha256_of "$src/$f")
		[ "$got" = "$want" ] || die "$BUNDLE: $f does not match SHA256SUMS (expected $want, got $got)"
	done
	say "contents ok: kubelet $version"

	chmod 0755 "$src/kubelet"
	check_kubelet "$src/kubelet" "$version" || die "refusing $BUNDLE: its kubelet does not run here or is not $version (wrong architecture?)"

	K=$R$kubelet_path
	D=$R$dropin_path
	if [ ! -L "$K" ] && [ ! -L "$D" ] && [ -f "$K" ] && [ -f "$D" ] && cmp -s "$src/kubelet" "$K" && cmp -s "$src/$dropin_name" "$D"; then
		say "in place: $kubelet_path and $dropin_path"
		say "kubelet-lxc $version is already installed; nothing changed"
		return 0
	fi

	for d in "$(dirname "$kubelet_path")" "$(dirname "$dropin_path")" "$(dirname "$STATE_REL")"; do assert_inside_root "$d"; done
	# Record what is replaced, in a new state folder swapped in whole.
	created=$(printf '%s\n' "$LOCK_DIRS"; missing_dirs "$(dirname "$kubelet_path")"; missing_dirs "$(dirname "$dropin_path")"; missing_dirs "$(dirname "$STATE_REL")")
	new_state=$STATE.new.$$
	rm -rf "$new_state"
	mkdir -p "$new_state/files"
	: >"$new_state/entries"
	for key in dropin kubelet; do
		if [ "$key" = kubelet ]; then p=$kubelet_path; else p=$dropin_path; fi
		if [ -L "$R$p" ]; then
			# the link itself is what was there: its target goes in the backup, restored as a link
			printf '%s' "$(readlink "$R$p")" >"$new_state/files/$key"
			echo "$key link $p" >>"$new_state/entries"
		elif [ -e "$R$p" ]; then
			[ -f "$R$p" ] || die "$p exists and is not a regular file: refusing to replace it"
			cp -p "$R$p" "$new_state/files/$key"
			echo "$key present $p" >>"$new_state/entries"
		else
			echo "$key absent $p" >>"$new_state/entries"
		fi
	done
	for d in $created; do echo "dir dir $d" >>"$new_state/entries"; done
	rm -rf "$STATE.old.$$"
	if [ -d "$STATE" ]; then mv "$STATE" "$STATE.old.$$"; fi
	mv "$new_state" "$STATE"
	rm -rf "$STATE.old.$$"
	say "backup of what is replaced: $STATE"

	# The kubelet first (a new path nothing points at yet), then the drop-in: its rename is the switch.
	atomic_copy "$src/kubelet" "$K" 0755
	atomic_copy "$src/$dropin_name" "$D" 0644
	say "installed $kubelet_path"
	say "installed $dropin_path"
	if ! check_kubelet "$K" "$version"; then
		say 'the installed kubelet does not run: rolling back'
		rollback
		die "install of $BUNDLE failed and was rolled back"
	fi
	restart_hint
	if [ -n "$R" ]; then undo=" --root $ROOT"; else undo=; fi
	say "to undo: sh install.sh$undo --rollback"
}

if [ "$ROLLBACK" = 1 ]; then
	[ -z "$BUNDLE" ] || die '--rollback takes no bundle'
	take_lock 'sh install.sh --rollback'
	rollback
else
	[ -n "$BUNDLE" ] || { usage >&2; die 'no bundle given'; }
	take_lock "sh install.sh $BUNDLE"
	do_install
fi
