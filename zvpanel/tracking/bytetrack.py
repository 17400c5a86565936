"""ByteTrack in numpy alone: Ultralytics' ``BYTETracker`` (8.4) without importing Ultralytics.

Importing anything of Ultralytics imports torch, about 500 MB of resident memory in every
process that counts, while its ByteTrack needs only numpy and ``lap``. This is its algorithm
and arithmetic, operation for operation (same dtypes, same order), for axis-aligned boxes
without motion compensation or appearance features, which zvpanel never uses; so the tracks,
ids and matched detections are the same (``tests/test_bytetrack.py`` compares them with
Ultralytics' own on real detections). BoT-SORT still runs on Ultralytics.

Ultralytics YOLO, AGPL-3.0 (as zvpanel): https://github.com/ultralytics/ultralytics,
``ultralytics/trackers/byte_tracker.py``, ``basetrack.py``, ``utils/matching.py``,
``utils/stracks.py``, ``utils/kalman_filter.py``.
"""

from __future__ import annotations

import itertools

import lap
import numpy as np

__all__ = ["ByteTracker"]

#: Track states (Ultralytics' ``TrackState``).
NEW, TRACKED, LOST, REMOVED = 0, 1, 2, 3
#: Removed tracks remembered (their ids are kept out of the lost pool).
REMOVED_BUFFER = 1000
#: IoU distances of the second (low-score) and the unconfirmed associations, and below
#: which a tracked and a lost track are the same person.
SECOND_MATCH_THRESH = 0.5
UNCONFIRMED_MATCH_THRESH = 0.7
DUPLICATE_THRESH = 0.15
IOU_EPS = 1e-7


class _Kalman:
    """Constant-velocity Kalman filter on (x centre, y centre, aspect ratio, height)."""

    std_position = 1.0 / 20
    std_velocity = 1.0 / 160

    def __init__(self) -> None:
        self.motion = np.eye(8, 8)
        for i in range(4):
            self.motion[i, 4 + i] = 1.0

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        measurement = np.asarray(measurement, dtype=np.float64)
        mean = np.r_[measurement, np.zeros_like(measurement)]
        h = measurement[3]
        pos, vel = 2 * self.std_position * h, 10 * self.std_velocity * h
        std = [pos, pos, 0.01, pos, vel, vel, 1e-05, vel]
        return mean, np.diag(np.square(std))

    def multi_predict(self, mean: np.ndarray, covariance: np.ndarray):
        h = mean[:, 3]
        std_pos = [self.std_position * h, self.std_position * h, 0.01 * np.ones_like(h)]
        std_pos.append(self.std_position * h)
        std_vel = [self.std_velocity * h, self.std_velocity * h, 1e-05 * np.ones_like(h)]
        std_vel.append(self.std_velocity * h)
        sqr = np.square(np.r_[std_pos, std_vel]).T
        motion_cov = np.zeros((sqr.shape[0], 8, 8))
        motion_cov[:, range(8), range(8)] = sqr
        mean = np.dot(mean, self.motion.T)
        left = np.dot(self.motion, covariance).transpose((1, 0, 2))
        return mean, np.dot(left, self.motion.T) + motion_cov

    def update(self, mean: np.ndarray, covariance: np.ndarray, measurement: np.ndarray):
        h = mean[3]
        innovation_cov = np.diag(np.square([self.std_position * h, self.std_position * h, 0.1,
                                            self.std_position * h]))  # fmt: skip
        projected_mean, projected_cov = mean[:4].copy(), covariance[:4, :4] + innovation_cov
        gain = np.linalg.solve(projected_cov, covariance[:, :4].T).T
        new_mean = mean + np.dot(measurement - projected_mean, gain.T)
        new_cov = covariance - np.linalg.multi_dot((gain, projected_cov, gain.T))
        return new_mean, new_cov


class _Track:
    """One tracklet (Ultralytics' ``STrack`` for axis-aligned boxes)."""

    def __init__(self, xywh: np.ndarray, score, cls, idx: int) -> None:
        ltwh = np.copy(xywh[:4])
        ltwh[0] = xywh[0] - xywh[2] / 2
        ltwh[1] = xywh[1] - xywh[3] / 2
        self._tlwh = np.asarray(ltwh, dtype=np.float32)
        self.mean: np.ndarray | None = None
        self.covariance: np.ndarray | None = None
        self.kalman: _Kalman | None = None
        self.is_activated = False
        self.state = NEW
        self.score, self.cls, self.idx = score, cls, idx
        self.track_id = 0
        self.tracklet_len = 0
        self.start_frame = 0
        self.frame_id = 0

    @property
    def tlwh(self) -> np.ndarray:
        if self.mean is None:
            return self._tlwh.copy()
        ret = self.mean[:4].copy()
        ret[2] *= ret[3]
        ret[:2] -= ret[2:] / 2
        return ret

    @property
    def xyxy(self) -> np.ndarray:
        ret = self.tlwh
        ret[2:] += ret[:2]
        return ret

    @staticmethod
    def xyah(tlwh: np.ndarray) -> np.ndarray:
        ret = np.asarray(tlwh).copy()
        ret[:2] += ret[2:] / 2
        ret[2] /= ret[3]
        return ret

    def activate(self, kalman: _Kalman, frame_id: int, track_id: int) -> None:
        self.kalman = kalman
        self.track_id = track_id
        self.mean, self.covariance = kalman.initiate(self.xyah(self._tlwh))
        self.tracklet_len = 0
        self.state = TRACKED
        if frame_id == 1:
            self.is_activated = True
        self.frame_id = self.start_frame = frame_id

    def update(self, new: _Track, frame_id: int, *, reactivate: bool = False) -> None:
        self.mean, self.covariance = self.kalman.update(
            self.mean, self.covariance, self.xyah(new.tlwh)
        )
        self.tracklet_len = 0 if reactivate else self.tracklet_len + 1
        self.state = TRACKED
        self.is_activated = True
        self.frame_id = frame_id
        self.score, self.cls, self.idx = new.score, new.cls, new.idx


def _multi_predict(tracks: list[_Track], kalman: _Kalman) -> None:
    if not tracks:
        return
    means = np.asarray([t.mean for t in tracks])
    covariances = np.asarray([t.covariance for t in tracks])
    for i, track in enumerate(tracks):
        if track.state != TRACKED:
            means[i][7] = 0
    means, covariances = kalman.multi_predict(means, covariances)
    for track, mean, covariance in zip(tracks, means, covariances, strict=True):
        track.mean, track.covariance = mean, covariance


def _iou_distance(a: list[_Track], b: list[_Track]) -> np.ndarray:
    ious = np.zeros((len(a), len(b)), dtype=np.float32)
    if a and b:
        box1 = np.ascontiguousarray([t.xyxy for t in a], dtype=np.float32)
        box2 = np.ascontiguousarray([t.xyxy for t in b], dtype=np.float32)
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.T
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.T
        inter = (np.minimum(b1_x2[:, None], b2_x2) - np.maximum(b1_x1[:, None], b2_x1)).clip(0) * (
            np.minimum(b1_y2[:, None], b2_y2) - np.maximum(b1_y1[:, None], b2_y1)
        ).clip(0)
        area = (b2_x2 - b2_x1) * (b2_y2 - b2_y1)
        area = area + ((b1_x2 - b1_x1) * (b1_y2 - b1_y1))[:, None] - inter
        ious = inter / (area + IOU_EPS)
    return 1 - ious


def _fuse_score(cost: np.ndarray, detections: list[_Track]) -> np.ndarray:
    if cost.size == 0:
        return cost
    scores = np.array([d.score for d in detections])[None].repeat(cost.shape[0], axis=0)
    return 1 - (1 - cost) * scores


def _assign(cost: np.ndarray, thresh: float):
    """Matched pairs and the unmatched rows and columns (``lap.lapjv`` up to ``thresh``)."""
    if cost.size == 0:
        return [], tuple(range(cost.shape[0])), tuple(range(cost.shape[1]))
    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    matches = [[ix, mx] for ix, mx in enumerate(x) if mx >= 0]
    return matches, np.where(x < 0)[0], np.where(y < 0)[0]


def _joint(a: list[_Track], b: list[_Track]) -> list[_Track]:
    ids = {t.track_id for t in a}
    return a + [t for t in b if t.track_id not in ids]


def _sub(a: list[_Track], b: list[_Track]) -> list[_Track]:
    ids = {t.track_id for t in b}
    return [t for t in a if t.track_id not in ids]


def _remove_duplicates(a: list[_Track], b: list[_Track]) -> tuple[list[_Track], list[_Track]]:
    dup_a, dup_b = set(), set()
    for p, q in zip(*np.where(_iou_distance(a, b) < DUPLICATE_THRESH), strict=True):
        if a[p].frame_id - a[p].start_frame > b[q].frame_id - b[q].start_frame:
            dup_b.add(q)
        else:
            dup_a.add(p)
    return (
        [t for i, t in enumerate(a) if i not in dup_a],
        [t for i, t in enumerate(b) if i not in dup_b],
    )


class ByteTracker:
    """Ultralytics' ``BYTETracker`` with its ``bytetrack.yaml`` settings as arguments.

    :meth:`update` takes one frame's boxes and returns, like Ultralytics, rows
    ``x1, y1, x2, y2, track id, score, class, index of the detection`` (float32) of the
    activated tracks. ``max_frames_lost`` may be changed between updates.
    """

    def __init__(
        self,
        *,
        track_high_thresh: float,
        track_low_thresh: float,
        new_track_thresh: float,
        match_thresh: float,
        fuse_score: bool,
        track_buffer: int,
    ) -> None:
        self.track_high_thresh, self.track_low_thresh = track_high_thresh, track_low_thresh
        self.new_track_thresh, self.match_thresh = new_track_thresh, match_thresh
        self.fuse_score = bool(fuse_score)
        self.max_frames_lost = int(track_buffer)
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 1."""
        self.tracked: list[_Track] = []
        self.lost: list[_Track] = []
        self.removed: list[_Track] = []
        self.frame_id = 0
        self.kalman = _Kalman()
        self._ids = itertools.count(1)

    def update(self, xyxy: np.ndarray, confidence: np.ndarray, cls: np.ndarray) -> np.ndarray:
        self.frame_id += 1
        xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        confidence = np.asarray(confidence, dtype=np.float32)
        cls = np.asarray(cls, dtype=np.float32)
        xywh = np.empty_like(xyxy)
        xywh[:, 0] = (xyxy[:, 0] + xyxy[:, 2]) / 2
        xywh[:, 1] = (xyxy[:, 1] + xyxy[:, 3]) / 2
        xywh[:, 2] = xyxy[:, 2] - xyxy[:, 0]
        xywh[:, 3] = xyxy[:, 3] - xyxy[:, 1]
        valid = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        high = valid & (confidence >= self.track_high_thresh)
        low = valid & (confidence > self.track_low_thresh) & (confidence < self.track_high_thresh)
        detections = self._tracks(xywh, confidence, cls, high)
        second = self._tracks(xywh, confidence, cls, low)
        activated: list[_Track] = []
        refind: list[_Track] = []
        unconfirmed = [t for t in self.tracked if not t.is_activated]
        pool = _joint([t for t in self.tracked if t.is_activated], self.lost)
        _multi_predict(pool, self.kalman)

        matches, u_track, u_detection = _assign(
            self._distances(pool, detections), self.match_thresh
        )
        for i, j in matches:
            (activated if pool[i].state == TRACKED else refind).append(pool[i])
            pool[i].update(detections[j], self.frame_id, reactivate=pool[i].state != TRACKED)
        lost = self._second_association([pool[i] for i in u_track], second, activated)
        removed = self._unconfirmed(unconfirmed, [detections[i] for i in u_detection], activated)
        for track in self.lost:
            if self.frame_id - track.frame_id > self.max_frames_lost:
                track.state = REMOVED
                removed.append(track)
        self._merge(activated, refind, lost, removed)
        rows = [
            [*t.xyxy.tolist(), t.track_id, t.score, t.cls, t.idx]
            for t in self.tracked
            if t.is_activated
        ]
        return np.asarray(rows, dtype=np.float32)

    def _tracks(self, xywh, confidence, cls, mask: np.ndarray) -> list[_Track]:
        boxes = np.concatenate([xywh[mask], np.arange(int(mask.sum())).reshape(-1, 1)], axis=-1)
        return [
            _Track(box, score, c, int(i))
            for box, score, c, i in zip(
                boxes, confidence[mask], cls[mask], np.flatnonzero(mask), strict=True
            )
        ]

    def _distances(self, tracks: list[_Track], detections: list[_Track]) -> np.ndarray:
        cost = _iou_distance(tracks, detections)
        return _fuse_score(cost, detections) if self.fuse_score else cost

    def _second_association(
        self, unmatched: list[_Track], second: list[_Track], activated: list[_Track]
    ) -> list[_Track]:
        """Still-tracked tracks the high-score boxes missed, matched to the low-score ones;
        returns those left, now lost."""
        tracked = [t for t in unmatched if t.state == TRACKED]
        left = range(len(tracked))
        if tracked and second:
            cost = _iou_distance(tracked, second)
            matches, left, _ = _assign(cost, SECOND_MATCH_THRESH)
            for i, j in matches:
                tracked[i].update(second[j], self.frame_id)
                activated.append(tracked[i])
        lost = [tracked[i] for i in left]
        for track in lost:
            track.state = LOST
        return lost

    def _unconfirmed(
        self, unconfirmed: list[_Track], detections: list[_Track], activated: list[_Track]
    ) -> list[_Track]:
        """Tracks seen once matched to the boxes left, new tracks from the rest; returns
        the unconfirmed tracks not seen again, now removed."""
        removed = []
        left = range(len(detections))
        if unconfirmed:
            cost = self._distances(unconfirmed, detections)
            matches, u_unconfirmed, left = _assign(cost, UNCONFIRMED_MATCH_THRESH)
            for i, j in matches:
                unconfirmed[i].update(detections[j], self.frame_id)
                activated.append(unconfirmed[i])
            for i in u_unconfirmed:
                unconfirmed[i].state = REMOVED
                removed.append(unconfirmed[i])
        for i in left:
            track = detections[i]
            if track.score >= self.new_track_thresh:
                track.activate(self.kalman, self.frame_id, next(self._ids))
                activated.append(track)
        return removed

    def _merge(self, activated, refind, lost, removed) -> None:
        tracked = [t for t in self.tracked if t.state == TRACKED]
        self.tracked = _joint(_joint(tracked, activated), refind)
        # As Ultralytics: the lost pool drops ids removed before this frame only.
        self.lost = _sub(_sub(self.lost, self.tracked) + lost, self.removed)
        self.tracked, self.lost = _remove_duplicates(self.tracked, self.lost)
        self.removed = (self.removed + removed)[-REMOVED_BUFFER:]
