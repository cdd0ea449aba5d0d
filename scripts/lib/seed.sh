# shellcheck shell=bash
# Seeds for scripts/property, scripts/stress and scripts/verify: a fixed or given seed replays a
# run; `--seed random` (or CANCELKIT_SEED=random) draws a fresh one for a nightly CI run, which the
# script prints first and records in its JSON and report, so that a failure replays with one
# command. Sourced; defines one function.

# cancelkit_resolve_seed SPEC DEFAULT FORMAT
#   SPEC     the --seed value given ('' when none)
#   DEFAULT  the script's default when neither --seed nor CANCELKIT_SEED is set: a number, or
#            'random'
#   FORMAT   dec (decimal, up to 19 digits; a random one is below 2^32: RapidCheck, verify) or
#            hex64 (decimal or 0x-hex, 64 bits; a random one is 0x + 16 hex digits: the stress
#            runner)
# Sets CANCELKIT_SEED_VALUE (the seed) and CANCELKIT_SEED_SOURCE (given, env, default or random);
# returns 2 and prints why on a malformed seed.
cancelkit_resolve_seed() {
  local spec=$1 default=$2 format=$3 source=given
  if [[ -z $spec && -n ${CANCELKIT_SEED:-} ]]; then spec=$CANCELKIT_SEED source=env; fi
  if [[ -z $spec ]]; then spec=$default source=default; fi
  if [[ $spec == random ]]; then
    source=random
    case $format in
      dec) spec=$(od -An -N4 -tu4 /dev/urandom | tr -d ' \n') ;;
      hex64) spec=0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n') ;;
      *) echo "cancelkit_resolve_seed: unknown format $format" >&2; return 2 ;;
    esac
  fi
  case $format in
    dec)
      if ! [[ $spec =~ ^[0-9]{1,19}$ ]]; then
        echo "seed must be a decimal number (up to 19 digits), or random: '$spec'" >&2
        return 2
      fi ;;
    hex64)
      if ! [[ $spec =~ ^(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,19})$ ]]; then
        echo "seed must be a decimal or 0x-hex 64-bit number, or random: '$spec'" >&2
        return 2
      fi ;;
  esac
  # shellcheck disable=SC2034  # read by the scripts that source this file
  CANCELKIT_SEED_VALUE=$spec CANCELKIT_SEED_SOURCE=$source
}
