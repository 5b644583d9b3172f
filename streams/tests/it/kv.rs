use async_nats::jetstream::kv;
use jetim_common::testing::TestNats;
use jetim_streams::kv::{JsonBucket, KvError, ensure_bucket};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TokenStatus {
    state: u8,
}

#[tokio::test]
async fn json_buckets_store_any_id_and_refuse_lost_races() {
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    let config = kv::Config {
        bucket: "test_tokens".into(),
        history: 5,
        ..Default::default()
    };
    let store = ensure_bucket(&jetstream, config.clone()).await.unwrap();
    // Applying the same bucket again is harmless.
    ensure_bucket(&jetstream, config).await.unwrap();
    let bucket: JsonBucket<TokenStatus> = JsonBucket::new(store, "test_tokens");

    let id = "user.with dots*and>stars 张";
    assert_eq!(bucket.get(id).await.unwrap(), None);
    let revision = bucket.create(id, &TokenStatus { state: 1 }).await.unwrap();
    assert!(matches!(
        bucket.create(id, &TokenStatus { state: 2 }).await,
        Err(KvError::Conflict { .. })
    ));
    assert_eq!(
        bucket.get(id).await.unwrap(),
        Some((TokenStatus { state: 1 }, revision))
    );
    let updated = bucket
        .update(id, &TokenStatus { state: 3 }, revision)
        .await
        .unwrap();
    assert!(matches!(
        bucket.update(id, &TokenStatus { state: 4 }, revision).await,
        Err(KvError::Conflict { .. })
    ));
    assert_eq!(
        bucket.get(id).await.unwrap(),
        Some((TokenStatus { state: 3 }, updated))
    );
    bucket.delete(id).await.unwrap();
    assert_eq!(bucket.get(id).await.unwrap(), None);
    assert!(matches!(bucket.get("").await, Err(KvError::InvalidKey(_))));
}
