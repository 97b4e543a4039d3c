#!/usr/bin/env bash
# The compatibility suite: real, unmodified clients from Debian's packages against a
# running Hamster endpoint. aws CLI (50 MiB multipart cp, sync, presign + curl), rclone
# (copy, check, purge), restic (init, backup, check --read-data, restore, prune), s3cmd
# (mb, put, multipart put, get, info, ls, del, rb).
#
# With HAMSTER_ENDPOINT, HAMSTER_ACCESS_KEY and HAMSTER_SECRET_KEY set it tests that
# endpoint (a cluster node, say); otherwise it starts `hamster server` on a free
# loopback port over a temporary data directory and stops it at the end.
# HAMSTER_BIN names the binary (default target/sim/hamster).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${HAMSTER_BIN:-target/sim/hamster}
work=$(mktemp -d -t hamster-compat-XXXXXX)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# This machine's AWS_CA_BUNDLE is for real AWS; rclone refuses to start with it.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE

if [ -z "${HAMSTER_ENDPOINT:-}" ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    export HAMSTER_ACCESS_KEY=COMPATSUITEACCESSKEY HAMSTER_SECRET_KEY=compat-suite-secret-key-0123456789
    "$bin" server --data "$work/data" --s3 "127.0.0.1:$port" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    HAMSTER_ENDPOINT="http://127.0.0.1:$port"
fi
endpoint=$HAMSTER_ENDPOINT
export AWS_ACCESS_KEY_ID=$HAMSTER_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$HAMSTER_SECRET_KEY
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
host=${endpoint#http://}
run=$(date +%s%N | tail -c 9)
step() { printf -- '-- %s\n' "$*"; }
fail() { echo "FAIL: $*"; [ -f "$work/server.log" ] && tail -n 40 "$work/server.log"; exit 1; }

# Debian's aws CLI (v2), not a pip one that may shadow it on PATH.
aws_bin=/usr/bin/aws
[ -x "$aws_bin" ] || aws_bin=$(command -v aws)
aws() { "$aws_bin" --endpoint-url "$endpoint" "$@"; }
quiet="--only-show-errors"

mkdir -p "$work/src/sub" "$work/dl"
head -c $((50 * 1024 * 1024)) /dev/urandom >"$work/big.bin"
for i in 1 2 3 4 5; do head -c $((i * 7777)) /dev/urandom >"$work/src/f$i"; done
echo "nested" >"$work/src/sub/n.txt"
: >"$work/src/empty"

step "aws CLI $("$aws_bin" --version 2>&1 | cut -d' ' -f1)"
b="aws-$run"
aws s3 mb "s3://$b" >/dev/null
aws s3 cp $quiet "$work/big.bin" "s3://$b/big.bin"
etag=$(aws s3api head-object --bucket "$b" --key big.bin --query ETag --output text)
case "$etag" in *-*) ;; *) fail "a 50 MiB cp was not multipart (ETag $etag)";; esac
aws s3 cp $quiet "s3://$b/big.bin" "$work/dl/big.bin"
cmp "$work/big.bin" "$work/dl/big.bin" || fail "50 MiB object differs"
aws s3 sync $quiet "$work/src" "s3://$b/tree"
aws s3 sync $quiet "s3://$b/tree" "$work/dl/tree"
diff -r "$work/src" "$work/dl/tree" || fail "sync round trip differs"
[ "$(aws s3 ls "s3://$b/tree/" --recursive | wc -l)" -eq 7 ] || fail "sync listed a wrong count"
url=$(aws s3 presign "s3://$b/tree/f3" --expires-in 120)
curl -fsS "$url" -o "$work/dl/presigned" || fail "presigned GET refused"
cmp "$work/src/f3" "$work/dl/presigned" || fail "presigned GET differs"
# The first "Signature=": SigV4's X-Amz-Signature, or SigV2's (older aws CLIs presign so).
code=$(curl -s -o /dev/null -w '%{http_code}' "${url/Signature=/Signature=0}")
[ "$code" -ge 400 ] || fail "a tampered presigned URL was served ($code)"
versions=$(aws s3api list-object-versions --bucket "$b" --prefix tree/ \
    --query "length(Versions[?VersionId=='null'])" --output text)
[ "$versions" -eq 7 ] || fail "list-object-versions listed $versions null versions, not 7"
aws s3 rm $quiet "s3://$b" --recursive
aws s3 rb "s3://$b" >/dev/null

step "rclone $(rclone version 2>/dev/null | head -1 | cut -d' ' -f2)"
cat >"$work/rclone.conf" <<EOF
[h]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $endpoint
region = us-east-1
EOF
rc() { rclone --config "$work/rclone.conf" -q "$@"; }
r="rclone-$run"
rc mkdir "h:$r"
rc copy "$work/src" "h:$r/data"
rc copy "$work/big.bin" "h:$r/blob"
rc check "$work/src" "h:$r/data" || fail "rclone check found differences"
rc check "$work" "h:$r/blob" --include /big.bin || fail "rclone check of the big file"
rc purge "h:$r"
rc lsd h: >"$work/buckets.txt"
if grep -q " $r\$" "$work/buckets.txt"; then fail "rclone purge left the bucket"; fi

step "restic $(restic version | cut -d' ' -f2)"
export RESTIC_PASSWORD=compat-password RESTIC_REPOSITORY="s3:$endpoint/restic-$run"
restic init -q
restic backup -q "$work/src" "$work/big.bin"
echo changed >>"$work/src/f1"
restic backup -q "$work/src"
restic check -q --read-data || fail "restic check --read-data"
restic restore -q latest --target "$work/restored"
diff -r "$work/src" "$work/restored$work/src" || fail "restic restore differs"
restic forget -q --keep-last 1 --prune
restic check -q --read-data || fail "restic check after prune"

step "s3cmd $(s3cmd --version | cut -d' ' -f3)"
cat >"$work/s3cfg" <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $host
host_bucket = $host
use_https = False
signature_v2 = False
bucket_location = us-east-1
EOF
s3c() { s3cmd -c "$work/s3cfg" --no-progress "$@"; }
c="s3cmd-$run"
s3c mb "s3://$c" >/dev/null
s3c put "$work/src/f2" "s3://$c/f2" >/dev/null
s3c put --multipart-chunk-size-mb=5 "$work/big.bin" "s3://$c/big" >/dev/null
s3c get --force "s3://$c/big" "$work/dl/s3cmd-big" >/dev/null
cmp "$work/big.bin" "$work/dl/s3cmd-big" || fail "s3cmd multipart round trip differs"
s3c info "s3://$c/f2" >"$work/info.txt"
grep -q "MD5 sum" "$work/info.txt" || fail "s3cmd info"
[ "$(s3c ls "s3://$c" | wc -l)" -eq 2 ] || fail "s3cmd ls count"
s3c del "s3://$c/f2" "s3://$c/big" >/dev/null
s3c rb "s3://$c" >/dev/null

echo "compat: aws CLI, rclone, restic and s3cmd passed against $endpoint"
