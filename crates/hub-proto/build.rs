//! Generates the gRPC types from proto/hubbub.proto with a vendored protoc (no system install).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let proto = "../../proto/hubbub.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure()
        .bytes(".")
        .compile_protos(&[proto], &["../../proto"])?;
    Ok(())
}
