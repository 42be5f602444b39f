//! Every flag of every subcommand says what it is for (issue 29: many had no help text). Walks
//! clap's own description of the command line, so a flag added without a doc comment fails here.

use clap::CommandFactory;

/// `nymgate SUB … --flag` for every argument without help text, over the whole command tree.
fn flags_without_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for arg in command.get_arguments() {
        // clap's own --help and --version carry their own text.
        if matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        let said = arg.get_help().or(arg.get_long_help()).is_some_and(|h| !h.to_string().trim().is_empty());
        if !said {
            let name = arg.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| arg.get_id().to_string());
            missing.push(format!("{path} {name}"));
        }
    }
    for sub in command.get_subcommands() {
        flags_without_help(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[test]
fn every_cli_flag_has_help_text() {
    let mut missing = Vec::new();
    flags_without_help(&crate::Cli::command(), "nymgate", &mut missing);
    assert_eq!(missing, Vec::<String>::new());
}

#[test]
fn a_flag_without_help_text_is_found() {
    let command = clap::Command::new("t")
        .subcommand(clap::Command::new("sub").arg(clap::Arg::new("bare").long("bare")))
        .arg(clap::Arg::new("said").long("said").help("what it is"));
    let mut missing = Vec::new();
    flags_without_help(&command, "t", &mut missing);
    assert_eq!(missing, ["t sub --bare"]);
}
