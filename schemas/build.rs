//! Compiles the OpenIM `.proto` files with protox (pure Rust, no system `protoc`) and hands
//! the descriptors to prost-build.

use std::path::PathBuf;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "openim/sdkws.proto",
    "openim/msg.proto",
    "openim/push.proto",
    "openim/conversation.proto",
    "openim/relation.proto",
    "openim/jssdk.proto",
    "openim/protobuf.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let file_descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    prost_build::Config::new()
        .out_dir(&out_dir)
        // OpenIM maps are unordered; BTreeMap keeps encodings deterministic for golden tests.
        .btree_map(["."])
        .compile_fds(file_descriptors)?;
    Ok(())
}
