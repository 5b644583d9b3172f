//! Online status routes, answered from the presence the gateways write.

use std::time::Duration;

use jetim_common::auth::Platform;
use jetim_common::presence::PresenceStore;
use serde_json::json;

use crate::support::{TestApp, error};

#[tokio::test]
async fn status_routes_answer_from_presence() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["sam", "tia", "uli"]).await;
    let sam = app.user_token(&admin, "sam", Platform::WEB).await;
    // What a gateway writes when tia connects on iOS and the web.
    let presence = PresenceStore::open(&app.jetstream, 1, Duration::from_secs(90))
        .await
        .unwrap();
    presence.set("tia", "gw-1", &[5, 1]).await.unwrap();

    let online = app
        .ok(
            "/user/get_users_online_status",
            &admin,
            &json!({"userIDs": ["tia", "uli"]}),
        )
        .await;
    assert_eq!(
        online,
        json!([
            {"userID": "tia", "status": 1, "detailPlatformStatus": [
                {"platformID": 1, "platform": "IOS", "status": 1, "connID": "",
                 "isBackground": false, "token": ""},
                {"platformID": 5, "platform": "Web", "status": 1, "connID": "",
                 "isBackground": false, "token": ""}]},
            {"userID": "uli", "status": 0, "detailPlatformStatus": null}
        ])
    );

    // Token detail: online users only, each connection's token fingerprint per platform.
    presence
        .set_connections("uli", "gw-2", &[(2, "fp-a"), (2, "fp-b"), (5, "fp-c")])
        .await
        .unwrap();
    let detail = app
        .ok(
            "/user/get_users_online_token_detail",
            &admin,
            &json!({"userIDs": ["uli", "sam"]}),
        )
        .await;
    assert_eq!(
        detail,
        json!([{"userID": "uli", "status": 1, "singlePlatformToken": [
            {"platformID": 2, "total": 2, "token": ["fp-a", "fp-b"]},
            {"platformID": 5, "total": 1, "token": ["fp-c"]}]}])
    );
    let reply = app
        .post(
            "/user/get_users_online_token_detail",
            Some(&sam),
            &json!({"userIDs": ["uli"]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    presence.set("uli", "gw-2", &[]).await.unwrap();
    let reply = app
        .post(
            "/user/get_users_online_status",
            Some(&sam),
            &json!({"userIDs": ["tia"]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "admins only: {reply}");
    let reply = app
        .post(
            "/user/get_users_online_status",
            Some(&admin),
            &json!({"userIDs": []}),
        )
        .await;
    assert_eq!(reply, error(1001, "ArgsError", "userIDs is empty"));

    let status = app
        .ok(
            "/user/get_users_status",
            &sam,
            &json!({"userID": "sam", "userIDs": ["tia", "uli"]}),
        )
        .await;
    assert_eq!(
        status,
        json!({"statusList": [
            {"userID": "tia", "status": 1, "platformIDs": [1, 5]},
            {"userID": "uli", "status": 0, "platformIDs": null}]})
    );
    let reply = app
        .post(
            "/user/get_users_status",
            Some(&sam),
            &json!({"userID": "tia", "userIDs": ["uli"]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "only for oneself: {reply}");

    // Subscriptions: kept per user, answered with the current status.
    let subscribed = app
        .ok(
            "/user/subscribe_users_status",
            &sam,
            &json!({"userID": "sam", "userIDs": ["tia", "uli"], "genre": 1}),
        )
        .await;
    assert_eq!(subscribed["statusList"][0]["status"], 1);
    presence.set("tia", "gw-1", &[]).await.unwrap();
    presence.set("uli", "gw-2", &[2]).await.unwrap();
    let following = app
        .ok(
            "/user/get_subscribe_users_status",
            &sam,
            &json!({"userID": "sam"}),
        )
        .await;
    assert_eq!(
        following,
        json!({"statusList": [
            {"userID": "tia", "status": 0, "platformIDs": null},
            {"userID": "uli", "status": 1, "platformIDs": [2]}]})
    );
    let unsubscribed = app
        .ok(
            "/user/subscribe_users_status",
            &sam,
            &json!({"userID": "sam", "userIDs": ["tia"], "genre": 2}),
        )
        .await;
    assert_eq!(unsubscribed, json!({"statusList": null}));
    let following = app
        .ok(
            "/user/get_subscribe_users_status",
            &sam,
            &json!({"userID": "sam"}),
        )
        .await;
    assert_eq!(following["statusList"].as_array().unwrap().len(), 1);
    let nobody = app
        .ok(
            "/user/get_subscribe_users_status",
            &admin,
            &json!({"userID": "tia"}),
        )
        .await;
    assert_eq!(nobody, json!({"statusList": null}));

    for (body, detail) in [
        (
            json!({"userID": "sam", "userIDs": ["tia"], "genre": 3}),
            "genre 3 is neither 1 (subscribe) nor 2 (unsubscribe)",
        ),
        (
            json!({"userID": "sam", "userIDs": [], "genre": 1}),
            "userIDs is empty",
        ),
        (
            json!({"userID": "", "userIDs": ["tia"], "genre": 1}),
            "userID is empty",
        ),
        (
            json!({"userID": "sam", "userIDs": ["tia", "tia"], "genre": 1}),
            "userIDs names \"tia\" twice",
        ),
    ] {
        let reply = app
            .post("/user/subscribe_users_status", Some(&sam), &body)
            .await;
        assert_eq!(reply["errCode"], 1001, "{body}: {reply}");
        assert_eq!(reply["errDlt"], detail, "{body}: {reply}");
    }
    let reply = app
        .post(
            "/user/subscribe_users_status",
            Some(&sam),
            &json!({"userID": "tia", "userIDs": ["uli"], "genre": 1}),
        )
        .await;
    assert_eq!(
        reply["errCode"], 1002,
        "nobody subscribes for another: {reply}"
    );
}
