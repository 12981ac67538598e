//! Generates the Session protobuf types with prost, using a vendored `protoc` so builds need no
//! system packages.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=protos");
    prost_build::Config::new().compile_protos(
        &[
            "protos/SessionProtos.proto",
            "protos/WebSocketResources.proto",
        ],
        &["protos"],
    )?;
    Ok(())
}
