//! Progress bars (indicatif), in the two layouts the applications use.
use indicatif::{ProgressBar, ProgressStyle};

/// One long run on its own line: `elapsed [bar] pos/len eta .. message` (training, sampling).
pub fn run_style() -> ProgressStyle {
    style("{elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta} {msg}")
}

/// One of several tasks shown together: `name [bar] pos/len rate eta` (the toy experiments).
pub fn task_style() -> ProgressStyle {
    style("{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
}

/// A bar of `len` steps in the [`run_style`], starting at `position` (a resumed run).
pub fn run_bar(len: u64, position: u64) -> ProgressBar {
    let bar = ProgressBar::new(len).with_style(run_style());
    bar.set_position(position);
    bar
}

fn style(template: &str) -> ProgressStyle {
    // The templates above are constants that parse; the fallback only guards a future edit.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_parse() {
        for t in [
            "{elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta} {msg}",
            "{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        ] {
            assert!(indicatif::ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
