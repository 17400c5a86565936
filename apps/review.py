"""Review of counts: a line's crossings with their crops, verdicts, reviewed precision."""

from zvpanel.ui.review import review_page

review_page().servable(title="zvpanel · Review")
