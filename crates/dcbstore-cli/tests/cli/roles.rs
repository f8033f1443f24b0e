//! Grants: what each role may do, and errors that say what to grant.

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn permission_errors_say_what_to_grant_and_grant_keeps_redact() {
    let db = TestDatabase::create().await.unwrap();
    let client = admin(&db).await;
    let (owner, owner_pw) = login_role(&client, "dcb_owner").await;
    let (app, app_pw) = login_role(&client, "dcb_app").await;
    client
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO {owner}",
            db.name()
        ))
        .await
        .unwrap();
    let (as_owner, as_app) = (url_as(&db, &owner, &owner_pw), url_as(&db, &app, &app_pw));
    let r = cli(Some(&as_app), &["migrate"], None);
    r.fails(1, "CREATE on database").hides(&app_pw);
    cli(Some(&as_owner), &["migrate"], None).ok();
    append(
        &as_owner,
        &[],
        &[json!({"type": "A", "data": {"email": "x@y"}})],
    );

    // Not granted: the privilege, and the command that gives it.
    let r = cli(Some(&as_app), &["read"], None);
    r.fails(1, "USAGE on schema dcbstore")
        .fails(1, &format!("dcbstore grant {app}"))
        .hides(&app_pw);
    // Only the owner can grant.
    cli(Some(&as_app), &["grant", &app], None).fails(1, "only the schema's owner");
    cli(Some(&as_owner), &["grant", &app], None).ok();
    assert_eq!(read(&as_app, &[]).len(), 1);
    let redact = [
        "redact",
        "--position",
        "1",
        "--data",
        "null",
        "--reason",
        "gdpr",
    ];
    cli(Some(&as_app), &redact, None)
        .fails(1, "EXECUTE on dcbstore.redact")
        .fails(1, &format!("dcbstore grant {app} --redact"));

    // grant without --redact never takes redact back.
    cli(Some(&as_owner), &["grant", &app, "--redact"], None).ok();
    cli(Some(&as_owner), &["grant", &app], None).ok();
    cli(Some(&as_app), &redact, None).ok();

    // A missing event is a usage error.
    let r = cli(
        Some(&as_app),
        &[
            "redact",
            "--position",
            "99",
            "--data",
            "null",
            "--reason",
            "x",
        ],
        None,
    );
    r.fails(2, "no event at position 99");
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_read_only_lets_a_role_read_but_not_append_or_redact_and_refuses_redact_with_it() {
    let db = TestDatabase::create().await.unwrap();
    let client = admin(&db).await;
    let (owner, owner_pw) = login_role(&client, "dcb_owner").await;
    let (reader, reader_pw) = login_role(&client, "dcb_reader").await;
    client
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO {owner}",
            db.name()
        ))
        .await
        .unwrap();
    let (as_owner, as_reader) = (
        url_as(&db, &owner, &owner_pw),
        url_as(&db, &reader, &reader_pw),
    );
    cli(Some(&as_owner), &["migrate"], None).ok();
    append(&as_owner, &[], &[json!({"type": "A", "tags": ["t:1"]})]);

    // The help says what the role is for.
    let help = cli(None, &["grant", "--help"], None);
    help.ok();
    assert!(
        help.stdout
            .contains("operations console and reporting tools"),
        "{help:#?}"
    );

    // Both together are a contradiction: a usage error, nothing granted.
    cli(
        Some(&as_owner),
        &["grant", &reader, "--read-only", "--redact"],
        None,
    )
    .fails(2, "cannot be used with");
    cli(Some(&as_reader), &["read"], None).fails(1, "USAGE on schema dcbstore");

    // An application role with redact, downgraded: read only, redact gone.
    let r = cli(Some(&as_owner), &["grant", &reader, "--redact"], None);
    r.ok();
    assert_eq!(
        r.stdout,
        format!("granted {reader:?} append and read and redact\n")
    );
    let r = cli(Some(&as_owner), &["grant", &reader, "--read-only"], None);
    r.ok();
    assert_eq!(r.stdout, format!("granted {reader:?} read only\n"));
    assert_eq!(positions(&as_reader, &["--tag", "t:1"]), [1]);
    assert_eq!(head(&as_reader), Some(1));
    cli(Some(&as_reader), &["status", "--check"], None).ok();
    // (Not `fails`: the writer also logs the failed batch as a warning.)
    let r = cli(
        Some(&as_reader),
        &["append"],
        Some(&jsonl(&[json!({"type": "B"})])),
    );
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.is_empty(), "{r:#?}");
    assert!(
        r.stderr
            .contains("lacks EXECUTE on function dcbstore.append_batch_typed"),
        "{r:#?}"
    );
    r.hides(&reader_pw);
    cli(
        Some(&as_reader),
        &[
            "redact",
            "--position",
            "1",
            "--data",
            "null",
            "--reason",
            "gdpr",
        ],
        None,
    )
    .fails(1, "EXECUTE on dcbstore.redact");
    assert_eq!(head(&as_owner), Some(1), "the refused append wrote nothing");
}
