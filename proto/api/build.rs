//! Generates the `sessiond.v1` messages, clients and servers with tonic-build (vendored `protoc`,
//! so builds need no system packages) and the file descriptor set that server reflection serves.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=sessiond");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_build::configure()
        // Undecodable requests are INVALID_ARGUMENT, not tonic's INTERNAL.
        .codec_path("crate::codec::SessiondCodec")
        .file_descriptor_set_path(out_dir.join("sessiond_v1_descriptor.bin"))
        .compile_protos(
            &[
                "sessiond/v1/identities.proto",
                "sessiond/v1/messages.proto",
                "sessiond/v1/conversations.proto",
                "sessiond/v1/network.proto",
                "sessiond/v1/webhooks.proto",
                "sessiond/v1/communities.proto",
                "sessiond/v1/groups.proto",
                "sessiond/v1/interactions.proto",
                "sessiond/v1/attachments.proto",
            ],
            &["."],
        )?;
    Ok(())
}
