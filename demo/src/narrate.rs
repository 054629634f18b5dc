//! How the demo talks: step headers, the equivalent commands, pauses, a
//! progress display, and the live view of a rollout.
//!
//! A live demo is read by an audience, so every step says what it does and
//! why before doing it, and shows the command a learner would type to do
//! the same by hand. It then waits for Enter — unless `--yes`, or unless
//! standard input is not a terminal: a script, a test or CI must never
//! hang on a prompt nobody can answer.
//!
//! Where the text goes: with `--output text` everything is on stdout. With
//! `--output json` stdout holds only the final JSON report (so it can be
//! piped into `jq`), and the narration moves to stderr.
//!
//! Live-view lines (what changes while a rollout runs) start with
//! [`LIVE`], so that the copy of a run kept for the book can drop them:
//! how many there are depends on timing.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The prefix of every live-view line.
pub const LIVE: &str = "  ~ ";

pub struct Narrator {
    out: Box<dyn Write + Send>,
    /// Wait for Enter before each step.
    pause: bool,
    /// Show spinners (only on a terminal: indicatif hides them otherwise).
    progress: bool,
    last_live: String,
}

impl Narrator {
    /// The narrator of the `demo` binary: stdout (stderr with JSON output),
    /// pausing unless `yes` or stdin is not a terminal.
    pub fn terminal(yes: bool, json: bool) -> Narrator {
        let out: Box<dyn Write + Send> = if json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        Narrator {
            out,
            pause: !yes && std::io::stdin().is_terminal(),
            progress: std::io::stderr().is_terminal(),
            last_live: String::new(),
        }
    }

    /// A narrator writing into `out`, never pausing (tests, benches).
    pub fn to(out: Box<dyn Write + Send>) -> Narrator {
        Narrator {
            out,
            pause: false,
            progress: false,
            last_live: String::new(),
        }
    }

    /// One line of the story.
    pub fn say(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", line.as_ref());
        let _ = self.out.flush();
    }

    /// A step's header: number, title, what and why, the equivalent
    /// commands. The caller then [`Narrator::pause`]s.
    pub fn step(&mut self, number: usize, title: &str, about: &str, commands: &[String]) {
        self.say("");
        self.say(format!("── {number}. {title} ──"));
        for line in wrap(about, 78) {
            self.say(line);
        }
        for c in commands {
            self.say(format!("  $ {c}"));
        }
        self.last_live.clear();
    }

    /// Waits for Enter (unless `--yes`, or stdin is not a terminal).
    ///
    /// The line is read on a thread of its own and awaited, so the task
    /// yields meanwhile: the demo's Ctrl-C handler, which races every step,
    /// can then end the run at the prompt itself. A read on the runtime's
    /// thread would hold the task until Enter, and Ctrl-C with it (tokio's
    /// handler has replaced the default one that would end the process).
    /// When Ctrl-C wins, the reading thread is left blocked; the process
    /// ends right after.
    pub async fn pause(&mut self) {
        if !self.pause {
            return;
        }
        let _ = write!(self.out, "  [Enter to run this step, Ctrl-C to stop] ");
        let _ = self.out.flush();
        let (entered, enter) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = entered.send(());
        });
        let _ = enter.await;
    }

    /// A live-view line, printed only when it differs from the last one.
    pub fn live(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if line != self.last_live {
            self.say(format!("{LIVE}{line}"));
            self.last_live = line.to_string();
        }
    }

    /// A spinner with `message`, on a terminal only; finish it with
    /// [`ProgressBar::finish_and_clear`].
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

/// Greedy word wrap to `width` columns, each line indented by two spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::from(" ");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.chars().count() > width && line.trim() != "" {
            lines.push(line);
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.trim() != "" {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    #[test]
    fn wraps_at_word_boundaries() {
        let lines = super::wrap("aaa bbb ccc ddd", 9);
        assert_eq!(lines, ["  aaa bbb", "  ccc ddd"]);
    }
}
