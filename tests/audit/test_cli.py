"""The audit command line: a TOML config file equals the same flags, flags override it, unknown options and
methods are refused, --help."""
import argparse

import pytest

from spectral_xai.__main__ import main  # noqa: F401  (the parser is built there)
from spectral_xai.audit import AuditConfig
from spectral_xai.audit.cli import add_audit_parser, config_from_args

from helpers import audit_cli


def test_config_file_equals_flags(tmp_path):
    parser = argparse.ArgumentParser()
    add_audit_parser(parser.add_subparsers(dest="command"))
    flags = ["audit", "skimage", "--out", "x", "--size", "32", "--methods", "vg,sg2", "--sigmas", "0:1:5",
             "--noise-scale", "0.2", "--seed", "3"]
    toml = tmp_path / "run.toml"
    toml.write_text('[audit]\ndata = "skimage"\nout = "x"\nsize = 32\nmethods = ["vg", "sg2"]\n'
                    'sigmas = [0.0, 0.25, 0.5, 0.75, 1.0]\nnoise-scale = 0.2\nseed = 3\n')
    a = config_from_args(parser.parse_args(flags))
    b = config_from_args(parser.parse_args(["audit", "--config", str(toml)]))
    assert a.key() == b.key() and a.sigmas == [0.0, 0.25, 0.5, 0.75, 1.0]
    c = config_from_args(parser.parse_args(["audit", "--config", str(toml), "--seed", "4"]))
    assert c.seed == 4 and c.size == 32                                 # flags override the file
    toml.write_text("[audit]\nsamplez = 3\n")
    with pytest.raises(ValueError, match="unknown option 'samplez'"):
        config_from_args(parser.parse_args(["audit", "--config", str(toml)]))
    with pytest.raises(ValueError, match="option 'methods'"):
        AuditConfig(methods=["vg", "gradcam"]).validate()
    r = audit_cli("audit", "--help")
    assert r.returncode == 0 and "--resume" in r.stdout and "torchrun" in r.stdout
