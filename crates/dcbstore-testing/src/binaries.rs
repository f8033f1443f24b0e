//! Finding the local PostgreSQL binaries and `pg_regress`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of the local PostgreSQL binaries: the first of `PATH`,
/// `pg_config --bindir` and the newest `/usr/lib/postgresql/*/bin` that has
/// `initdb` and `pg_ctl`.
#[must_use]
pub fn postgres_bindir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(out) = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versioned.sort();
    candidates.extend(versioned.into_iter().rev().map(|(_, p)| p));
    candidates.into_iter().find_map(|dir| {
        // Follow a symlinked pg_ctl to the real bin directory, which also
        // holds psql and sits beside pg_regress.
        let real = std::fs::canonicalize(dir.join("pg_ctl")).ok()?;
        let real_dir = real.parent()?.to_path_buf();
        [real_dir, dir]
            .into_iter()
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    })
}

/// The `pg_regress` program that goes with the binaries in `bindir`, if
/// installed: `$PG_REGRESS` when set, else beside `bindir`, else in the PGXS
/// directory of `pg_config --pgxs` (where Nix's split packages keep it).
#[must_use]
pub fn find_pg_regress(bindir: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PG_REGRESS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(bindir.join("../lib/pgxs/src/test/regress/pg_regress"));
    candidates.push(bindir.join("pg_regress"));
    let pg_config = [bindir.join("pg_config"), PathBuf::from("pg_config")];
    candidates.extend(pg_config.iter().filter_map(|exe| {
        let out = Command::new(exe).arg("--pgxs").output().ok()?;
        // <pkglibdir>/pgxs/src/makefiles/pgxs.mk
        let pgxs = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let src = pgxs.parent()?.parent()?;
        out.status
            .success()
            .then(|| src.join("test/regress/pg_regress"))
    }));
    candidates.into_iter().find(|p| p.is_file())
}
