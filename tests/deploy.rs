//! The files in deploy/ that no other test exercises: the systemd unit (verified by
//! `systemd-analyze verify`, with the binary path pointed at the built one) and the example
//! configuration it starts with (checked by the real `ocspd check-config`).

use crate::util::*;
use std::process::Command;

/// `systemd-analyze verify` of a unit in deploy/systemd, with the binary path pointed at the
/// built one; the unit must start `ocspd --config <config>`.
fn verify_unit(name: &str, config: &str) {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd").join(name)).unwrap();
    assert!(unit.contains(&format!("ExecStart=/usr/local/bin/ocspd --config {config}")), "{unit}");
    let ocspd = bin("ocspd");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, unit.replace("/usr/local/bin/ocspd", ocspd.to_str().unwrap())).unwrap();
    let out = run(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    // Unknown or misspelt directives are only warnings to systemd: any output is a failure here.
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify {name}:\n{said}");
}

#[test]
fn the_fleet_node_unit_verifies_and_its_configuration_checks() {
    verify_unit("ocspd-fleet-node.service", "/etc/ocspd/fleet-node.toml");
    let out =
        run(Command::new(bin("ocspd")).arg("check-config").arg("--config").arg(repo().join("deploy/fleet-node.toml")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("fleet.database = \"postgresql://ocspd@db.internal:5432/ocspd\"  # file"), "{said}");
    assert!(said.contains("fleet.node = \"eu-west-1a\"  # file"), "{said}");
}

#[test]
fn the_systemd_unit_verifies_and_its_configuration_checks() {
    verify_unit("ocspd.service", "/etc/ocspd/ocspd.toml");
    let ocspd = bin("ocspd");

    // ExecStartPre: the shipped configuration is valid, as the real binary checks it.
    let config = repo().join("deploy/ocspd.toml");
    let out = run(Command::new(&ocspd).arg("check-config").arg("--config").arg(&config));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("data_dir = \"/var/lib/ocspd\"  # file"), "{said}");
    assert!(said.contains("pkcs11.modules = \"/usr/lib/softhsm/libsofthsm2.so\"  # file"), "{said}");
}
