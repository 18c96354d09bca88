// The SQL migrations are embedded at compile time by `sqlx::migrate!`.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
