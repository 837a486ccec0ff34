"""A tiny web-ish helper module with classic mistakes, for the scanners to find."""

import hashlib
import pickle
import subprocess

import yaml

DB_PASSWORD = "hunter2"


def run_report(name):
    # command injection: the name goes to a shell
    return subprocess.call("generate-report " + name, shell=True)


def load_settings(text):
    # arbitrary object construction from YAML
    return yaml.load(text)


def restore_session(blob):
    # unsafe deserialization of client data
    return pickle.loads(blob)


def password_digest(password):
    # weak hash for a password
    return hashlib.md5(password.encode()).hexdigest()


def evaluate(expression):
    # code injection
    return eval(expression)
