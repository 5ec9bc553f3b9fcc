#!/usr/bin/env bash
# test_damage_campaign.sh: randomly damaged checkpoints and snapshots are
# always detected, before libhdf5 parses them (issue 9, section 2).
#
# Real files: an ember-pagerank checkpoint of data/karate.el, an
# ember-kmeans checkpoint of data/iris.csv and a state snapshot of
# ember-stream-wordcount. Each is damaged N ways, deterministically (an LCG
# seeded with DAMAGE_SEED): 1 to 3 changed bytes anywhere (half the cases),
# a truncation, or a zeroed 512-byte page. A copy that happens to equal the
# original is drawn again. For every damaged copy:
#   - ember-inspect exits 1 (not 0, no crash, no hang);
#   - every DAMAGE_RESUME_EVERY-th copy is also resumed: a directory holding
#     one good older checkpoint and the damaged newest one. The run must
#     exit 0, print the skip (or fallback) message naming the damaged file,
#     and give output identical (cmp) to an uninterrupted run.
# Counts of crashes, hangs, wrong results and undetected damage are
# printed; any of them fails the test.
#
# Environment: DAMAGE_N (pagerank copies, default 160), DAMAGE_N_OTHER
# (k-means and stream copies, default a quarter of DAMAGE_N),
# DAMAGE_RESUME_EVERY (default 8; the defaults keep ctest near 20 s on an
# idle machine), DAMAGE_SEED, DAMAGE_KINDS (default "pagerank kmeans
# stream"). The full campaign, 400 of each kind all resumed:
#   DAMAGE_N=400 DAMAGE_N_OTHER=400 DAMAGE_RESUME_EVERY=1 \
#     bash test_damage_campaign.sh
set -uo pipefail
# The outputs record when they were written (`created`); a fixed
# SOURCE_DATE_EPOCH makes two runs' files comparable byte for byte.
export SOURCE_DATE_EPOCH=1700000000
: "${EMBER_BIN:?}" "${EMBER_SRC:?}"
export LC_ALL=C
N=${DAMAGE_N:-160}
EVERY=${DAMAGE_RESUME_EVERY:-8}
SEED=${DAMAGE_SEED:-20261202}
KINDS=${DAMAGE_KINDS:-pagerank kmeans stream}
ins=$EMBER_BIN/ember-inspect
T=$(mktemp -d "${TMPDIR:-/tmp}/ember-damage.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "test_damage_campaign: FAIL: $*" >&2; exit 1; }

# ---- deterministic damage -------------------------------------------------

rng=$SEED
next() { # r in [0, 2^31)
    rng=$(( rng * 6364136223846793005 + 1442695040888963407 ))
    r=$(( (rng >> 33) & 0x7fffffff ))
}

# damage SRC DST: writes a damaged copy; DESC says what was done.
damage() {
    local src=$1 dst=$2 size k pos old new nb page
    size=$(stat -c %s "$src")
    while :; do
        cp "$src" "$dst"
        next
        case $(( r % 4 )) in
        0|1)
            next; nb=$(( 1 + r % 3 )); DESC="bytes"; n_bytes=$((n_bytes + 1))
            for (( k = 0; k < nb; k++ )); do
                next; pos=$(( r % size ))
                old=$(od -An -tu1 -j "$pos" -N1 "$dst" | tr -d ' ')
                next; new=$(( old ^ (1 + r % 255) ))
                printf "\\x$(printf %02x "$new")" |
                    dd of="$dst" bs=1 seek="$pos" conv=notrunc status=none
                DESC="$DESC $pos"
            done ;;
        2)
            next; pos=$(( r % size )); DESC="truncated to $pos"; n_trunc=$((n_trunc + 1))
            truncate -s "$pos" "$dst" ;;
        3)
            next; page=$(( r % ((size + 511) / 512) )); DESC="zeroed page $page"
            n_page=$((n_page + 1))
            dd if=/dev/zero of="$dst" bs=512 seek="$page" count=1 conv=notrunc \
                status=none
            truncate -s "$size" "$dst" ;; # a last partial page stays partial
        esac
        cmp -s "$src" "$dst" && { n_same=$((n_same + 1)); continue; }
        return 0
    done
}

crashes=0 hangs=0 wrong=0 undetected=0 resumes=0 copies=0
n_bytes=0 n_trunc=0 n_page=0 n_same=0 # draws by kind; n_same: redrawn
problem() { # KIND COPY WHAT
    echo "  $1 copy $2 ($DESC): $3" >&2
}

# inspect_one KIND I FILE
inspect_one() {
    local st=0
    timeout 60 "$ins" "$3" >"$T/ins.out" 2>&1 || st=$?
    if [ "$st" -eq 124 ]; then hangs=$((hangs + 1)); problem "$1" "$2" "ember-inspect hung"
    elif [ "$st" -ge 128 ]; then crashes=$((crashes + 1)); problem "$1" "$2" "ember-inspect died ($st)"
    elif [ "$st" -eq 0 ]; then undetected=$((undetected + 1)); problem "$1" "$2" "ember-inspect verified it"
    elif [ "$st" -ne 1 ]; then wrong=$((wrong + 1)); problem "$1" "$2" "ember-inspect exit $st"
    fi
}

# judge KIND I STATUS LOG OUT REF SKIPREGEX: the verdict on one resume.
judge() {
    local kind=$1 i=$2 st=$3 log=$4 out=$5 ref=$6 skip=$7
    resumes=$((resumes + 1))
    if [ "$st" -eq 124 ]; then hangs=$((hangs + 1)); problem "$kind" "$i" "resume hung"
    elif [ "$st" -ge 128 ]; then crashes=$((crashes + 1)); problem "$kind" "$i" "resume died ($st)"
    elif [ "$st" -ne 0 ]; then wrong=$((wrong + 1)); problem "$kind" "$i" "resume exit $st: $(tail -2 "$log")"
    elif ! grep -q -- "$skip" "$log"; then undetected=$((undetected + 1)); problem "$kind" "$i" "no skip message: $(cat "$log")"
    elif ! cmp -s "$ref" "$out"; then wrong=$((wrong + 1)); problem "$kind" "$i" "output differs"
    fi
}

# ---- PageRank of karate ---------------------------------------------------

campaign_pagerank() {
    local n=$1 pr=$EMBER_BIN/ember-pagerank
    local args=(--input "$EMBER_SRC/data/karate.el" --undirected --output out.csv)
    mkdir -p "$T/pr" && cd "$T/pr" || fail "cd"
    "$pr" "${args[@]}" --quiet || fail "pagerank reference run"
    mv out.csv ref.csv
    "$pr" "${args[@]}" --quiet --checkpoint-dir ck --checkpoint-every 10 --keep 10 ||
        fail "pagerank checkpointed run"
    cmp -s ref.csv out.csv || fail "pagerank: checkpointing changed the output"
    [ -f ck/ckpt-000000000010.h5 ] && [ -f ck/ckpt-000000000020.h5 ] ||
        fail "pagerank: no checkpoints 10 and 20: $(ls ck)"
    "$ins" ck/ckpt-000000000020.h5 >/dev/null || fail "pagerank: the original does not verify"
    for (( i = 0; i < n; i++ )); do
        damage ck/ckpt-000000000020.h5 bad.h5
        copies=$((copies + 1))
        inspect_one pagerank "$i" bad.h5
        (( i % EVERY == 0 )) || continue
        rm -rf rk out.csv && mkdir rk
        cp ck/ckpt-000000000010.h5 rk/ && cp bad.h5 rk/ckpt-000000000020.h5
        local st=0
        timeout 60 "$pr" "${args[@]}" --checkpoint-dir rk --checkpoint-every 10 \
            >/dev/null 2>log.txt || st=$?
        judge pagerank "$i" "$st" log.txt out.csv ref.csv \
            "skipping checkpoint rk/ckpt-000000000020.h5: "
        [ "$st" -ne 0 ] || grep -q "resumed from rk/ckpt-000000000010.h5" log.txt ||
            { wrong=$((wrong + 1)); problem pagerank "$i" "resume message: $(cat log.txt)"; }
    done
    cd "$T" || fail "cd"
}

# ---- k-means of iris --------------------------------------------------------

campaign_kmeans() {
    local n=$1 km=$EMBER_BIN/ember-kmeans
    local args=(--input "$EMBER_SRC/data/iris.csv" --k 3 --init random --seed 7
                --tolerance 0 --iterations 30 --output out.h5)
    mkdir -p "$T/km" && cd "$T/km" || fail "cd"
    "$km" "${args[@]}" --quiet >/dev/null || fail "kmeans reference run"
    mv out.h5 ref.h5
    rm -rf ck
    "$km" "${args[@]}" --iterations 2 --quiet --checkpoint-dir ck --checkpoint-every 1 \
        --keep 10 >/dev/null || fail "kmeans checkpointed run"
    rm -f out.h5
    [ -f ck/ckpt-000000000001.h5 ] && [ -f ck/ckpt-000000000002.h5 ] ||
        fail "kmeans: no checkpoints 1 and 2: $(ls ck)"
    for (( i = 0; i < n; i++ )); do
        damage ck/ckpt-000000000002.h5 bad.h5
        copies=$((copies + 1))
        inspect_one kmeans "$i" bad.h5
        (( i % EVERY == 0 )) || continue
        rm -rf rk out.h5 && mkdir rk
        cp ck/ckpt-000000000001.h5 rk/ && cp bad.h5 rk/ckpt-000000000002.h5
        local st=0
        timeout 60 "$km" "${args[@]}" --checkpoint-dir rk --checkpoint-every 1 \
            >/dev/null 2>log.txt || st=$?
        judge kmeans "$i" "$st" log.txt out.h5 ref.h5 \
            "skipping checkpoint rk/ckpt-000000000002.h5: "
    done
    cd "$T" || fail "cd"
}

# ---- a word-count stream's state snapshot ------------------------------------

campaign_stream() {
    local n=$1
    . "$EMBER_SRC/tests/integration/test_stream_lib.sh"
    mkdir -p "$T/st/src" && cd "$T/st" || fail "cd"
    run() {
        "$WC" --source "$T/st/src" --checkpoint-location "$T/st/ck" \
            --sink "$T/st/out" --trigger available-now --max-files-per-trigger 1 "$@"
    }
    for k in 1 2 3 4 5; do make_file src "f$k" "$k" 300; done
    run --quiet || fail "stream setup run"
    [ -f ck/state/4.h5 ] && [ -f ck/state/3.h5 ] || fail "stream: no snapshots 3 and 4"
    make_file src f6 6 300
    reference_count src >ref.csv
    mv ck ck.base && mv out out.base && cp ck.base/state/4.h5 good4.h5
    for (( i = 0; i < n; i++ )); do
        damage good4.h5 bad.h5
        copies=$((copies + 1))
        inspect_one stream "$i" bad.h5
        (( i % EVERY == 0 )) || continue
        rm -rf ck out && cp -r ck.base ck && cp -r out.base out
        cp bad.h5 ck/state/4.h5
        local st=0
        timeout 60 bash -c "$(declare -f run); WC=$WC T=$T run" >/dev/null 2>log.txt || st=$?
        newest=$(newest_output out)
        judge stream "$i" "$st" log.txt "${newest:-/nonexistent}" ref.csv \
            "state snapshot .*/state/4.h5 cannot be used"
    done
    cd "$T" || fail "cd"
}

for kind in $KINDS; do
    case $kind in
    pagerank) campaign_pagerank "$N" ;;
    kmeans) campaign_kmeans "$(( ${DAMAGE_N_OTHER:-$(( (N + 3) / 4 ))} ))" ;;
    stream) campaign_stream "$(( ${DAMAGE_N_OTHER:-$(( (N + 3) / 4 ))} ))" ;;
    *) fail "unknown kind $kind" ;;
    esac
done
echo "test_damage_campaign: damage drawn: $n_bytes with 1-3 changed bytes," \
     "$n_trunc truncations, $n_page zeroed pages ($n_same equal to the original, drawn again)"
echo "test_damage_campaign: $copies damaged copies inspected, $resumes resumed:" \
     "$crashes crashes, $hangs hangs, $wrong wrong results, $undetected undetected"
[ $((crashes + hangs + wrong + undetected)) -eq 0 ] || fail "see above"
echo "test_damage_campaign: PASS"
