# Development environment for dcbstore (https://devenv.sh): stable Rust with
# rustfmt and clippy, the PostgreSQL 15 server binaries the test harness
# starts its throwaway clusters from, and the project's tasks as scripts.
#
# The `ci` script runs .ci/checks, the steps of .ci/run after its apt-get
# install (which this file replaces): one list of steps for both.
#
#   devenv shell                 # enter; then: ci, test, bench, pg-regress, lint
#   devenv shell -- pg-regress   # one task without entering
#   devenv test                  # runs `ci`
{ pkgs, lib, ... }:

let
  postgresql = pkgs.postgresql_15;
in
{
  # The stable channel comes from the rust-overlay input (devenv.yaml).
  languages.rust = {
    enable = true;
    channel = "stable";
    components = [ "rustc" "cargo" "clippy" "rustfmt" "rust-analyzer" ];
  };

  # initdb, pg_ctl, postgres and psql on PATH: dcbstore_testing
  # (postgres_bindir) finds them there. No PostgreSQL service is needed: the
  # tests, examples and benchmarks start and remove their own clusters.
  # nats-server on PATH: dcbstore_testing::NatsServer starts it (-js) for
  # the NATS transport's tests. chromium and chromedriver on PATH:
  # dcbstore_testing::ChromeDriver drives the console's browser tests.
  packages = [ postgresql pkgs.nats-server pkgs.chromium pkgs.chromedriver ];

  # Nix keeps pg_regress in the -dev output (lib/pgxs), not beside the
  # binaries; dcbstore_testing::find_pg_regress takes it from here.
  env.PG_REGRESS = "${lib.getDev postgresql}/lib/pgxs/src/test/regress/pg_regress";

  scripts = {
    # .ci/run without the apt-get install.
    ci.exec = ''
      cd "$DEVENV_ROOT"
      exec .ci/checks
    '';
    ci.description = "the steps of .ci/run (format, lints, examples, tests)";

    # Every test: unit, integration, DCB scenarios, concurrency, CLI,
    # pg_regress, doctests. Extra arguments go to cargo test.
    test.exec = ''
      cd "$DEVENV_ROOT"
      exec cargo test "$@"
    '';
    test.description = "cargo test";

    # The README's benchmarks; BENCH_SECONDS, BENCH_BIG_LOG and BENCH_EVENTS
    # pass through from the environment.
    bench.exec = ''
      set -euo pipefail
      cd "$DEVENV_ROOT"
      cargo bench --bench dcb
      cargo bench --bench rebuild
    '';
    bench.description = "cargo bench --bench dcb, then --bench rebuild";

    pg-regress.exec = ''
      cd "$DEVENV_ROOT"
      exec cargo test --test it pg_regress:: "$@"
    '';
    pg-regress.description = "the SQL-level suite in pg_regress/ (cargo test --test it pg_regress::)";

    lint.exec = ''
      set -euo pipefail
      cd "$DEVENV_ROOT"
      cargo fmt --check
      cargo clippy --all-targets --all-features -- -D warnings
      cargo clippy --all-targets -- -D warnings
      cargo clippy --lib --no-default-features -- -D warnings
    '';
    lint.description = "cargo fmt --check and cargo clippy (all features, default features, no default features)";
  };

  enterShell = ''
    echo "dcbstore: $(rustc --version), PostgreSQL $(pg_ctl --version | awk '{print $NF}')"
    echo "scripts: ci, test, bench, pg-regress, lint"
  '';

  enterTest = ''
    ci
  '';
}
