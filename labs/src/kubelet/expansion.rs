//! `$(VAR)` expansion, as the kubelet does it for `env` values, `command`
//! and `args` (upstream's `third_party/forked/golang/expansion`).
//!
//! Why the kubelet expands at all: a container's arguments often need a
//! value only known on the node — the pod's IP, its name — and the
//! manifest cannot contain it. The downward API puts the value into an
//! environment variable (`POD_IP` from `status.podIP`), and `$(POD_IP)` in
//! `args` then reads it, **without a shell**: the image may have none (our
//! `FROM scratch` image has none), and the kubelet, not `sh`, does the
//! substitution before the runtime starts the process.
//!
//! The rules, which are not a shell's:
//!
//! * `$(NAME)` becomes the variable's value if `NAME` is defined, and is
//!   left **as written** if not (no error, no empty string);
//! * `$$` is an escaped `$`: `$$(NAME)` gives the literal `$(NAME)`;
//! * any other `$` (`$NAME`, `${NAME}`, a `$(` never closed) stays as is —
//!   `$NAME` is the shell's syntax and only a shell would expand it;
//! * in `env`, a literal `value` may refer to variables defined **before**
//!   it (earlier in `env`, or from `envFrom`); values from `valueFrom`
//!   (ConfigMaps, Secrets, the downward API) are never expanded.

/// Expands `$(NAME)` references in `input`; `lookup` gives a variable's
/// value, `None` when it is not defined (then the reference is kept).
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if after.is_empty() {
            // A lone `$` at the end is kept.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$'); // `$$` → `$`
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    // Never closed: keep `$(` and go on after it.
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            // `$` followed by anything else: keep both.
            let c = after.chars().next().expect("not empty");
            out.push('$');
            out.push(c);
            rest = &after[c.len_utf8()..];
        }
    }
    out.push_str(rest);
    out
}

/// Looks a name up in a resolved environment (the last definition wins, as
/// in the environment the process gets).
pub fn lookup_in(env: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    |name| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// A container's `command` and `args` with `$(VAR)` expanded from its
/// resolved environment (`ExpandContainerCommandAndArgs`): what the
/// runtime is asked to run.
pub fn expand_command_and_args(
    container: &k8s_openapi::api::core::v1::Container,
    env: &[(String, String)],
) -> k8s_openapi::api::core::v1::Container {
    let mut c = container.clone();
    let expand_all = |list: &mut Option<Vec<String>>| {
        for s in list.iter_mut().flatten() {
            *s = expand(s, lookup_in(env));
        }
    };
    expand_all(&mut c.command);
    expand_all(&mut c.args);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of upstream's `expand_test.go` that matter here.
    #[test]
    fn expansion_rules() {
        let env: Vec<(String, String)> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("POD_IP", "127.0.1.7"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_B)", "A-B"),
            ("$(POD_IP):5432", "127.0.1.7:5432"),
            ("$(VAR_EMPTY)x", "x"),
            ("$(UNDEFINED)", "$(UNDEFINED)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$VAR_A", "$VAR_A"),
            ("${VAR_A}", "${VAR_A}"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$", "$"),
            ("$$", "$"),
            ("$()", "$()"),
            ("ünï$(VAR_A)cødé$é", "ünïAcødé$é"),
            ("no references", "no references"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, lookup_in(&env)), want, "{input:?}");
        }
    }

    #[test]
    fn command_and_args_are_expanded_from_the_environment() {
        let c = k8s_openapi::api::core::v1::Container {
            name: "proxy".into(),
            command: Some(vec!["/demo-app".into()]),
            args: Some(vec![
                "proxy".into(),
                "--listen".into(),
                "$(POD_IP):5432".into(),
                "--to".into(),
                "$(DB_ADDR)".into(),
            ]),
            ..Default::default()
        };
        let env = vec![("POD_IP".to_string(), "127.0.1.3".to_string())];
        let e = expand_command_and_args(&c, &env);
        assert_eq!(e.command.unwrap(), ["/demo-app"]);
        assert_eq!(
            e.args.unwrap(),
            ["proxy", "--listen", "127.0.1.3:5432", "--to", "$(DB_ADDR)"]
        );
    }
}
