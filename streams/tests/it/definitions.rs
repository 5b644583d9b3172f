use async_nats::jetstream::stream::StorageType;
use jetim_common::testing::TestNats;
use jetim_streams::definitions::{Applied, StreamDefinition, apply, apply_all, embedded};

fn im_conv() -> StreamDefinition {
    embedded()
        .unwrap()
        .into_iter()
        .find(|definition| definition.name() == "IM_CONV")
        .unwrap()
}

#[tokio::test]
async fn applying_the_streams_twice_changes_nothing() {
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    let first = apply_all(&jetstream, 1).await.unwrap();
    assert_eq!(
        first,
        vec![
            ("IM_CONV".to_owned(), Applied::Created),
            ("IM_USER".to_owned(), Applied::Created)
        ]
    );
    let second = apply_all(&jetstream, 1).await.unwrap();
    assert_eq!(
        second,
        vec![
            ("IM_CONV".to_owned(), Applied::Unchanged),
            ("IM_USER".to_owned(), Applied::Unchanged)
        ]
    );
}

#[tokio::test]
async fn a_changed_limit_is_applied_and_reported() {
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    apply_all(&jetstream, 1).await.unwrap();

    let text = include_str!("../../IM_CONV.json").replace("1048576", "2097152");
    let changed = StreamDefinition::parse("IM_CONV.json (edited)", &text).unwrap();
    let Applied::Updated(differences) = apply(&jetstream, &changed).await.unwrap() else {
        panic!("expected an update");
    };
    assert_eq!(differences.len(), 1);
    assert_eq!(differences[0].field, "max_msg_size");
    assert_eq!(differences[0].server, 1_048_576);
    assert_eq!(differences[0].declared, 2_097_152);

    let mut stream = jetstream.get_stream("IM_CONV").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.max_message_size,
        2_097_152
    );
    assert_eq!(
        apply(&jetstream, &changed).await.unwrap(),
        Applied::Unchanged
    );
}

#[tokio::test]
async fn an_incompatible_change_is_refused_with_what_differs() {
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    apply_all(&jetstream, 1).await.unwrap();

    let text = include_str!("../../IM_CONV.json").replace("\"file\"", "\"memory\"");
    let changed = StreamDefinition::parse("IM_CONV.json (edited)", &text).unwrap();
    let message = apply(&jetstream, &changed).await.unwrap_err().to_string();
    assert!(message.contains("stream IM_CONV"), "{message}");
    assert!(
        message.contains("storage is \"file\" on the server but \"memory\" in the definition"),
        "{message}"
    );
    let mut stream = jetstream.get_stream("IM_CONV").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.storage,
        StorageType::File
    );
}

#[tokio::test]
async fn a_change_the_server_refuses_is_reported_with_the_servers_reason() {
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    apply_all(&jetstream, 1).await.unwrap();

    // deny_delete cannot be switched off once set, which protects the audit record.
    let text = include_str!("../../IM_CONV.json")
        .replace("\"deny_delete\": true", "\"deny_delete\": false");
    let changed = StreamDefinition::parse("IM_CONV.json (edited)", &text).unwrap();
    let message = match apply(&jetstream, &changed).await {
        Err(error) => error.to_string(),
        Ok(applied) => panic!("the server accepted turning deny_delete off: {applied:?}"),
    };
    assert!(message.contains("deny_delete"), "{message}");
    assert!(message.contains("the server says"), "{message}");
}

#[tokio::test]
async fn the_definitions_are_what_the_nats_cli_would_create() {
    // The files are stream configurations as the JetStream API takes them; the server
    // reports back every declared field unchanged.
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    apply(&jetstream, &im_conv()).await.unwrap();
    let mut stream = jetstream.get_stream("IM_CONV").await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert!(im_conv().differences(&config).is_empty());
    assert_eq!(config.subjects, vec!["im.conv.>".to_owned()]);
    assert!(config.deny_delete && config.deny_purge && config.allow_direct);
}
