"""deploy/validate.py's own tests: each breaks one thing in a copy of the files it reads and
expects the failure to name it, so a check that stopped checking shows up.

Run by deploy/validate.sh with its tools on PATH: python -m unittest deploy/validate_test.py
"""

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What validate.py reads, and what docker-compose and kustomize render.
COPIED = [
    ".env.example",
    "Cargo.toml",
    "Dockerfile",
    "docker-compose.yml",
    "compose.env",
    "deploy",
    "docs/operations.md",
    "shared/src",
    "ingestor/src",
    "processor/src",
    "api/src",
    *(str(p.relative_to(ROOT)) for p in ROOT.glob("*/Cargo.toml")),
]


def validate(root: Path) -> tuple[int, str]:
    """validate.py's exit status and output on the files under `root`."""
    (root / "empty.env").touch()
    compose = subprocess.run(
        ["docker-compose", "--env-file", "empty.env", "config"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (root / "compose.rendered.yml").write_text(compose)
    subprocess.run(
        ["kubectl", "kustomize", "deploy/kubernetes", "-o", "kubernetes.rendered.yml"],
        cwd=root,
        check=True,
    )
    result = subprocess.run(
        [
            sys.executable,
            "deploy/validate.py",
            "--compose",
            "compose.rendered.yml",
            "--kubernetes",
            "kubernetes.rendered.yml",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return result.returncode, result.stdout + result.stderr


class Broken(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = Path(tempfile.mkdtemp(prefix="roomtape-validate-"))
        cls.pristine = cls.scratch / "pristine"
        for path in COPIED:
            source, target = ROOT / path, cls.pristine / path
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy)(source, target)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.scratch)

    def broken(self, path: str, old: str, new: str, expected: str) -> None:
        root = self.scratch / self.id().rsplit(".", 1)[1]
        shutil.copytree(self.pristine, root)
        text = (root / path).read_text()
        self.assertIn(old, text, f"{path} changed: update this test")
        (root / path).write_text(text.replace(old, new, 1))
        status, output = validate(root)
        self.assertEqual(status, 1, output)
        self.assertIn(expected, output)

    def test_the_files_as_they_are_pass(self):
        status, output = validate(self.pristine)
        self.assertEqual(status, 0, output)

    def test_a_variable_read_but_not_documented(self):
        self.broken(
            "shared/src/config/sections.rs",
            '.get("RETRY_DELAYS")',
            '.get("RETRY_DELAYZ")',
            "RETRY_DELAYZ is read but .env.example does not document it",
        )

    def test_an_unknown_variable_in_compose(self):
        self.broken(
            "compose.env",
            "RUST_LOG=info",
            "RUST_LOG=info\nRUST_LOGS=x",
            "RUST_LOGS is not a roomtape variable",
        )

    def test_a_health_check_on_the_wrong_port(self):
        self.broken(
            "docker-compose.yml",
            "127.0.0.1:8081/readyz",
            "127.0.0.1:8080/readyz",
            "services.api.healthcheck.test: does not probe /readyz or /healthz on port 8081",
        )

    def test_a_password_that_postgres_does_not_have(self):
        self.broken(
            "compose.env",
            "roomtape-compose@postgres",
            "roomtape-other@postgres",
            "services.processor-1.environment.DATABASE_URL: does not match services.postgres",
        )

    def test_a_binary_not_built(self):
        self.broken("Dockerfile", ' --bin roomtape"', '"', "Dockerfile: roomtape is not built")

    def test_a_processor_image_without_ffmpeg(self):
        self.broken(
            "Dockerfile",
            "--no-install-recommends ffmpeg ca-certificates",
            "--no-install-recommends ca-certificates",
            "Dockerfile: stage processor: does not install ffmpeg",
        )

    def test_processors_on_the_image_without_ffmpeg(self):
        self.broken(
            "docker-compose.yml",
            "build: {context: ., target: processor}",
            "build: .",
            "services.processor-1.build.target: None, not the Dockerfile's processor stage",
        )

    def test_processor_pods_on_the_image_without_ffmpeg(self):
        self.broken(
            "deploy/kubernetes/processor.yaml",
            "image: roomtape-processor",
            "image: roomtape",
            "not the processor's image (ffmpeg)",
        )

    def test_a_probe_on_a_path_that_does_not_exist(self):
        self.broken(
            "deploy/kubernetes/api.yaml",
            "path: /readyz, port: http}",
            "path: /ready, port: http}",
            "readinessProbe: should GET /readyz on 8081, gets /ready on 8081",
        )

    def test_a_field_kubernetes_does_not_know(self):
        self.broken(
            "deploy/kubernetes/processor.yaml",
            "maxUnavailable: 1",
            "maxUnavailabl: 1",
            "'maxUnavailabl' was unexpected",
        )

    def test_a_service_selecting_no_pod(self):
        self.broken(
            "deploy/kubernetes/ingestor.yaml",
            "    app.kubernetes.io/component: ingestor\n  ports:",
            "    app.kubernetes.io/component: ingestr\n  ports:",
            "Service/roomtape-ingestor.spec.selector",
        )

    def test_scaling_on_another_queue(self):
        self.broken(
            "deploy/kubernetes/processor.yaml",
            "queueName: roomtape.events",
            "queueName: roomtape.event",
            "metadata.queueName: should be roomtape.events",
        )

    def test_a_metric_the_binaries_do_not_have(self):
        self.broken(
            "deploy/observability/grafana-dashboard.json",
            "roomtape_head_seconds_bucket",
            "roomtape_head_second_bucket",
            "roomtape_head_second_bucket exists neither",
        )

    def test_a_label_rabbitmq_does_not_have(self):
        self.broken(
            "deploy/observability/alerts.yaml",
            'rabbitmq_queue_messages{queue="roomtape.dead"}',
            'rabbitmq_queue_messages{queues="roomtape.dead"}',
            "has no label queues",
        )

    def test_an_alert_without_a_runbook(self):
        self.broken(
            "docs/operations.md",
            "**RoomtapeNoWebhooks**",
            "**No webhooks**",
            "RoomtapeNoWebhooks: docs/operations.md says nothing about it",
        )


if __name__ == "__main__":
    unittest.main()
