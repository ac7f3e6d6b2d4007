"""Notebook 07's fallback: without Prometheus and Alertmanager it evaluates the same rules in Python, posts the
notification Alertmanager would have sent to the receiver, and the receiver still retrains through the pipeline.

CI installs both binaries, so the notebook's normal run takes the real path; this test forces the other one with the
notebook's ``USE_PROMETHEUS`` parameter (about two minutes: in an empty workspace the catch-up runs the pipeline).
"""

from __future__ import annotations

import nbformat

from mlops_helpers import course


def _stream_text(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def test_notebook_07_alerts_and_retrains_without_prometheus(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (result,) = course.run(["07"], tmp_path / "ws", {"USE_PROMETHEUS": False})
    assert result.status == "ok", result.error
    text = _stream_text(result.output)
    assert "FALLBACK: no Prometheus or Alertmanager here" in text
    assert "first firing sample" not in text  # a figure only Prometheus can give
    assert "[6/6] promote     ok" in text and "pipeline: PROMOTED" in text  # the receiver retrained on the alert
    assert "  retrain | [FIRING] CityBikesErrorHigh: RMSE" in text  # the notification the notebook posted
