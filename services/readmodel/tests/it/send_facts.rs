//! The facts of sends read together ([`read_many`], [`FactsReader`]) are the facts each reads
//! alone ([`read`]), whatever mix of sends waits at once.

use jetim_common::testing::TestDatabase;
use jetim_readmodel::send_facts::{FactsReader, OwnedKeys, SendFacts, read, read_many};

/// Rows for every fact a send reads: users (one an admin), a receiver with a setting on
/// the conversation, a block, a friendship, a group with a muted member, a stored message.
async fn facts_database() -> TestDatabase {
    let database = TestDatabase::migrated().await;
    let client = database.pool().get().await.unwrap();
    client
        .batch_execute(
            "INSERT INTO users_v1 (user_id, nickname, face_url, ex, app_manger_level,
                                   global_recv_msg_opt, create_time, stream_sequence)
             VALUES ('ann', 'ann', '', '', 1, 0, 1, 1), ('bo', 'bo', '', '', 1, 2, 1, 2),
                    ('cy', 'cy', '', '', 2, 0, 1, 3);
             INSERT INTO user_conversations_v1 (owner_user_id, conversation_id,
                                                conversation_type, user_id, group_id,
                                                recv_msg_opt)
             VALUES ('bo', 'si_ann_bo', 1, 'ann', '', 1);
             INSERT INTO blacks_v1 (owner_user_id, black_user_id, ex, operator_user_id,
                                    create_time, deleted, stream_sequence)
             VALUES ('cy', 'ann', '', 'cy', 1, false, 4), ('cy', 'bo', '', 'cy', 1, true, 5);
             INSERT INTO friends_v1 (owner_user_id, friend_user_id, remark, is_pinned, ex,
                                     add_source, operator_user_id, create_time, deleted,
                                     stream_sequence)
             VALUES ('bo', 'ann', '', false, '', 1, 'bo', 1, false, 6);
             INSERT INTO groups_v1 (group_id, group_name, face_url, notification,
                                    introduction, ex, owner_user_id, creator_user_id,
                                    group_type, status, need_verification, look_member_info,
                                    apply_member_friend, create_time,
                                    notification_update_time, notification_user_id,
                                    stream_sequence)
             VALUES ('g', 'g', '', '', '', '', 'ann', 'ann', 2, 3, 0, 0, 0, 1, 0, '', 7);
             INSERT INTO group_members_v1 (group_id, user_id, nickname, face_url, role_level,
                                           join_time, join_source, inviter_user_id,
                                           operator_user_id, mute_end_time, ex)
             VALUES ('g', 'ann', '', '', 100, 1, 1, '', '', 0, ''),
                    ('g', 'bo', '', '', 20, 1, 1, '', '', 9999999999999, '');
             INSERT INTO messages_v1 (conversation_id, seq, client_msg_id, server_msg_id,
                                      send_id, send_time, content_type, body, stream_sequence)
             VALUES ('si_ann_bo', 1, 'c1', 's1', 'ann', 1234, 101, '{}', 8);",
        )
        .await
        .unwrap();
    database
}

fn keys(send_id: &str, recv_id: &str, group_id: &str, client_msg_id: &str) -> OwnedKeys {
    let conversation_id = if group_id.is_empty() {
        let mut pair = [send_id, recv_id];
        pair.sort_unstable();
        format!("si_{}_{}", pair[0], pair[1])
    } else {
        format!("sg_{group_id}")
    };
    OwnedKeys {
        send_id: send_id.into(),
        recv_id: recv_id.into(),
        group_id: group_id.into(),
        conversation_id,
        client_msg_id: client_msg_id.into(),
    }
}

/// Sends of every kind: known and unknown users and groups, blocked and befriended,
/// muted, a stored clientMsgID, and one naming neither a receiver nor a group.
fn every_kind_of_send() -> Vec<OwnedKeys> {
    vec![
        keys("ann", "bo", "", "c1"),
        keys("ann", "bo", "", "new"),
        keys("ann", "cy", "", "x"),
        keys("bo", "cy", "", "x"),
        keys("nobody", "bo", "", "x"),
        keys("ann", "nobody", "", "x"),
        keys("bo", "", "g", "x"),
        keys("cy", "", "g", "x"),
        keys("ann", "", "missing", "x"),
        keys("cy", "", "", "x"),
    ]
}

/// The facts of each send, read one after the other.
async fn each_alone(pool: &deadpool_postgres::Pool, sends: &[OwnedKeys]) -> Vec<SendFacts> {
    let mut alone = Vec::new();
    for send in sends {
        alone.push(read(pool, send.borrowed()).await.unwrap());
    }
    alone
}

#[tokio::test]
async fn sends_read_together_get_the_facts_each_reads_alone() {
    let database = facts_database().await;
    let pool = database.pool();
    let sends = every_kind_of_send();
    let alone = each_alone(&pool, &sends).await;
    // The facts themselves, so that agreeing is not agreeing on nothing.
    assert_eq!(alone[0].sender_level, Some(1));
    assert_eq!(alone[0].receiver_global_recv_opt, Some(2));
    assert_eq!(alone[0].receiver_conversation_recv_opt, 1);
    assert!(alone[0].receiver_befriends_sender);
    assert_eq!(alone[0].original.as_ref().map(|o| o.seq), Some(1));
    assert_eq!(alone[1].original, None);
    assert!(alone[2].receiver_blocks_sender);
    assert!(!alone[3].receiver_blocks_sender, "a deleted block");
    assert_eq!(alone[4].sender_level, None);
    assert_eq!(alone[5].receiver_global_recv_opt, None);
    assert_eq!(
        (alone[6].group_status, alone[6].sender_role),
        (Some(3), Some(20))
    );
    assert_eq!(alone[6].sender_mute_end_time, 9_999_999_999_999);
    assert_eq!(
        (alone[7].group_status, alone[7].sender_role),
        (Some(3), None)
    );
    assert_eq!(alone[8].group_status, None);
    assert_eq!(
        alone[9],
        SendFacts {
            sender_level: Some(2),
            ..SendFacts::default()
        }
    );

    assert_eq!(read_many(&pool, &sends).await.unwrap(), alone);
    let reversed: Vec<OwnedKeys> = sends.iter().rev().cloned().collect();
    let mut backwards = read_many(&pool, &reversed).await.unwrap();
    backwards.reverse();
    assert_eq!(backwards, alone, "each send its own facts, in order");
}

#[tokio::test]
async fn a_reader_answers_many_sends_at_once_each_with_its_own_facts() {
    let database = facts_database().await;
    let pool = database.pool();
    let sends = every_kind_of_send();
    let alone = each_alone(&pool, &sends).await;
    let reader = FactsReader::new(pool.clone());
    // 500 sends at once, the kinds interleaved: many wait together.
    let answers = futures::future::join_all((0..500).map(|n| {
        let reader = reader.clone();
        let send = sends[n % sends.len()].clone();
        async move { reader.read(send.borrowed()).await.unwrap() }
    }))
    .await;
    for (n, facts) in answers.iter().enumerate() {
        assert_eq!(facts, &alone[n % sends.len()], "send {n}");
    }
}
