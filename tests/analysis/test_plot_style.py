"""The figures' shared helpers: a legend only where something is labelled."""

from __future__ import annotations

import warnings

from analysis.plot_style import legend, pyplot


def test_a_legend_is_drawn_for_labelled_artists_and_skipped_without_a_warning_otherwise():
    plt = pyplot()
    fig, (empty, labelled) = plt.subplots(1, 2)
    try:
        labelled.plot([0, 1], [0, 1], label="twin")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # matplotlib warns "No artists with labels found" on an empty legend
            legend(empty, fontsize=8)
            legend(labelled, fontsize=8)
        assert empty.get_legend() is None
        assert [t.get_text() for t in labelled.get_legend().get_texts()] == ["twin"]
    finally:
        plt.close(fig)
