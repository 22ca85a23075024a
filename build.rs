// The migrations are embedded by `sqlx::migrate!`, which Cargo does not know
// reads the directory: without this, a new migration is left out of the build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
