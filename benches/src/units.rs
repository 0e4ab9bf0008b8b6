//! Sizes in binary units, as the reports write them.

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

/// "256 MiB", "4 KiB", or bytes when neither divides evenly.
pub fn size_text(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}
