//! `s3find`: see `ferry_agent::find`.

fn main() {}
