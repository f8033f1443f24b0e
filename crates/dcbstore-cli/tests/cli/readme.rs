//! The README's promises: short, every link resolving, the quickstart as
//! written.

use crate::*;

/// The README is the front door (at most 250 lines); the manual is the guide
/// in docs/guide, whose every chapter is in its SUMMARY and compiled as
/// doctests; no relative link of either points at a file that is not there.
#[test]
fn the_readme_is_short_and_every_link_of_it_and_the_guide_resolves() {
    // The workspace root (this crate is crates/dcbstore-cli).
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 250,
        "README.md has {} lines",
        readme.lines().count()
    );
    let guide = root.join("docs/guide");
    let summary = std::fs::read_to_string(guide.join("SUMMARY.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let mut pages = vec![(root.join("README.md"), readme)];
    for entry in std::fs::read_dir(&guide).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "{name} is not in SUMMARY.md"
            );
            if name != "introduction.md" {
                assert!(
                    lib.contains(&format!("include_str!(\"../docs/guide/{name}\")")),
                    "{name}'s code blocks are not compiled (src/lib.rs)"
                );
            }
        }
        pages.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
    }
    for (page, text) in &pages {
        let dir = page.parent().unwrap();
        for link in text.split("](").skip(1) {
            let target = &link[..link.find(')').unwrap()];
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") {
                continue;
            }
            assert!(
                dir.join(file).exists(),
                "{}: the link ({target}) points at no file",
                page.display()
            );
        }
    }
}

/// The README's quickstart, run as written against an empty database (its
/// `export` and `createdb` lines stand for the test database; `read --follow`
/// runs until it has printed the history, then gets Ctrl-C), and Cargo's
/// metadata has no placeholder.
#[tokio::test(flavor = "multi_thread")]
async fn readme_quickstart_runs_as_written_from_an_empty_database() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("From an empty PostgreSQL")
        .expect("the quickstart");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    let lines: Vec<&str> = block.lines().collect();
    assert!(lines.len() <= 10, "ten lines at most: {block}");
    for step in [
        "createdb",
        "dcbstore migrate",
        "dcbstore append",
        "dcbstore read",
        "--follow",
    ] {
        assert!(block.contains(step), "the quickstart shows {step}: {block}");
    }
    let install = &readme[readme.find("## Install").unwrap()..start];
    assert!(
        install.contains("cargo install --path crates/dcbstore-cli")
            && install.contains("cargo install dcbstore-cli")
    );
    assert!(install.contains("PostgreSQL 14 or newer"), "{install}");

    let db = TestDatabase::create().await.unwrap();
    let config = db.config().unwrap();
    let (host, port) = host_port(&db);
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for line in lines {
        let command = line.split("  #").next().unwrap().trim();
        if command.starts_with("export ") || command.starts_with("createdb") {
            continue;
        }
        let follow = command.contains("--follow");
        // `exec`: the signal goes to dcbstore itself, not to the shell.
        let mut cmd = command_in_shell(&format!("exec {command}"));
        cmd.env("PATH", &path)
            .env("PGHOST", &host)
            .env("PGPORT", port.to_string())
            .env("PGUSER", config.get_user().unwrap())
            .env(
                "PGPASSWORD",
                String::from_utf8(config.get_password().unwrap().to_vec()).unwrap(),
            )
            .env("PGDATABASE", db.name())
            .env("PGSSLMODE", "disable");
        if follow {
            outputs.push(follow_until_interrupted(cmd, 2));
            continue;
        }
        let r = run_cmd(cmd, None);
        assert_eq!(r.code, 0, "{command}: {r:#?}");
        outputs.push(r.stdout);
    }
    let followed = outputs.pop().unwrap();
    assert_eq!(
        followed.lines().count(),
        2,
        "read --follow prints the history: {followed}"
    );
    let last = outputs.last().unwrap();
    assert_eq!(last.lines().count(), 2, "the history: {last}");
    assert!(
        last.contains("CourseDefined") && last.contains("StudentSubscribed"),
        "{last}"
    );

    let cargo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml")).unwrap();
    for placeholder in [
        "example.com",
        "example.org",
        "your-org",
        "yourname",
        "TODO",
        "FIXME",
        "<",
        "XXX",
    ] {
        assert!(
            !cargo.contains(placeholder),
            "placeholder {placeholder:?} in Cargo.toml"
        );
    }
}

/// Runs a `read --follow` command until it printed `lines` lines, then sends
/// it SIGINT (Ctrl-C): it must exit 0 with nothing on stderr. Its stdout.
fn follow_until_interrupted(mut cmd: Command, lines: usize) -> String {
    use std::io::{BufRead, BufReader, Read};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the follow command");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    for _ in 0..lines {
        assert!(out.read_line(&mut printed).unwrap() > 0, "{printed}");
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl-C ends --follow with 0: {stderr}"
    );
    assert_eq!(stderr, "");
    printed
}

/// `sh -c COMMAND` without the test's connection settings.
fn command_in_shell(command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).env_remove("DATABASE_URL");
    for v in dcbstore::connection::LIBPQ_VARIABLES {
        cmd.env_remove(v);
    }
    cmd.env_remove("PGPASSFILE")
        .current_dir(std::env::temp_dir());
    cmd
}
