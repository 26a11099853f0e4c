//! Names the target the binary is built for, for `hitcounter --version`.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=HITCOUNTER_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
