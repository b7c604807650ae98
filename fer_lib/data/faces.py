"""MTCNN face tracking and cropping for the T frames of one clip.

The cost of a clip must stay near the cost of decoding it, so the full MTCNN cascade (P-, R-,
O-net, the expensive part being P-net's image pyramid) runs only on a few keyframes
(`PreprocessConfig.detect_keyframes`, default 3: first, middle, last of the T frames), on frames
downscaled to `PreprocessConfig.detect_max_side`, coarse to fine: first for faces of at least 1/5
of the frame height (a RAVDESS face is about 1/3; the pyramid is 3x cheaper), then, only if none
is found, down to `PreprocessConfig.min_face_size`. The face is then *tracked* on all T frames by
MTCNN's last stage alone: O-net, batched over the T frames, on a 48x48 crop of the full-resolution
frame around the box predicted for that frame (linear interpolation between the keyframe boxes),
twice (the second pass starts from the first pass's refined box). O-net returns the refined box,
the 5 landmarks and a face probability for each frame.

Identity and fallbacks:
- several faces: the face kept is the one with the best `size x centrality` score over the
  keyframes; on the other keyframes the detection that overlaps it most (IoU >= 0.3) is taken, and
  a tracked box must overlap its prediction, so the track never jumps to another person;
- a frame where O-net loses the face gets the full cascade (batched over all such frames); if the
  face is still not found there, the frame reuses the box of its neighbours (interpolated in time)
  and gets canonical landmark positions, and `FaceTrack.detected` is False for it;
- no face in any keyframe: the full cascade runs on every frame; no face in any frame: the clip is
  faceless (`FaceTrack.found` is False). The preprocessing reports such a clip and does not cache
  it; `crop_faces` can still crop it (a centred square, canonical landmarks), for prediction on
  arbitrary videos.

Boxes are smoothed over time (zero-phase exponential smoothing, `box_smoothing`), then each crop is
a square of side max(w, h) * (1 + 2 * face_margin) around the smoothed box, black outside the
frame, resized to `image_size`. Landmarks are returned in crop pixel coordinates, in MTCNN's order
(`fer_lib.landmarks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image

from fer_lib.config import PreprocessConfig
from fer_lib.data.video import upright
from fer_lib.landmarks import canonical_in_box

MIN_IOU = 0.3  # a box must overlap the track this much to belong to the same face


# --------------------------------------------------------------------------------------------
# Frame sources: where crops come from (decoded YUV frames, or RGB arrays)
# --------------------------------------------------------------------------------------------


class FrameSource(Protocol):
    width: int
    height: int

    def __len__(self) -> int: ...

    def small(self, index: int, max_side: int) -> np.ndarray: ...

    def crop(self, index: int, x0: int, y0: int, side: int, out_size: int) -> np.ndarray: ...


def small_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size (w, h) of a frame downscaled so that its longest side is at most `max_side`."""
    s = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


class YuvFrames:
    """Decoded frames kept as YUV 4:2:0 planes, upright; only the crops are converted to RGB (by swscale).

    Converting 16 full 720p frames to RGB costs more than decoding them; converting a 300 px crop
    costs almost nothing.
    """

    def __init__(self, frames: list):
        self._frames = []
        self._arrays: dict[int, np.ndarray] = {}
        self._index: list[int] = []
        for frame in frames:
            key = id(frame)
            if key not in self._arrays:
                frame = upright(frame)
                if frame.format.name not in ("yuv420p", "yuvj420p") or frame.width % 2 or frame.height % 2:
                    frame = frame.reformat(width=frame.width // 2 * 2, height=frame.height // 2 * 2, format="yuv420p")
                self._arrays[key] = frame.to_ndarray()
                self._frames.append(frame)
            self._index.append(key)
        first = self._arrays[self._index[0]]
        self.height, self.width = first.shape[0] * 2 // 3, first.shape[1]
        # one reformatter: swscale contexts are cached while sizes repeat (a new one per frame costs ~2 ms)
        self._reformatter = VideoReformatter()

    def __len__(self) -> int:
        return len(self._index)

    def _planes(self, index: int):
        a = self._arrays[self._index[index]]
        h, w = self.height, self.width
        u = a[h : h + h // 4].reshape(h // 2, w // 2)
        v = a[h + h // 4 :].reshape(h // 2, w // 2)
        return a[:h], u, v

    def small(self, index: int, max_side: int) -> np.ndarray:
        w, h = small_size(self.width, self.height, max_side)
        frame = av.VideoFrame.from_ndarray(self._arrays[self._index[index]], format="yuv420p")
        return self._reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()

    def crop(self, index: int, x0: int, y0: int, side: int, out_size: int) -> np.ndarray:
        """RGB [out_size, out_size, 3] of the square (x0, y0, side); x0, y0 even, side a multiple of 4."""
        Y, U, V = self._planes(index)
        out = np.empty((side * 3 // 2, side), np.uint8)
        y_out = out[:side]
        u_out = out[side : side + side // 4].reshape(side // 2, side // 2)
        v_out = out[side + side // 4 :].reshape(side // 2, side // 2)
        _paste(Y, y_out, x0, y0, 16)
        _paste(U, u_out, x0 // 2, y0 // 2, 128)
        _paste(V, v_out, x0 // 2, y0 // 2, 128)
        frame = av.VideoFrame.from_ndarray(out, format="yuv420p")
        interp = "AREA" if out_size < side else "BILINEAR"
        return self._reformatter.reformat(frame, width=out_size, height=out_size, format="rgb24",
                                          interpolation=interp).to_ndarray()


class RgbFrames:
    """Frames given as RGB arrays [T, H, W, 3] uint8 (prediction on arbitrary videos, tests)."""

    def __init__(self, frames: np.ndarray):
        self.frames = np.asarray(frames)
        self.height, self.width = self.frames.shape[1:3]

    def __len__(self) -> int:
        return len(self.frames)

    def small(self, index: int, max_side: int) -> np.ndarray:
        w, h = small_size(self.width, self.height, max_side)
        if (w, h) == (self.width, self.height):
            return self.frames[index]
        return np.asarray(Image.fromarray(self.frames[index]).resize((w, h), Image.BOX))

    def crop(self, index: int, x0: int, y0: int, side: int, out_size: int) -> np.ndarray:
        out = np.zeros((side, side, 3), np.uint8)
        _paste(self.frames[index], out, x0, y0, 0)
        return np.asarray(Image.fromarray(out).resize((out_size, out_size), Image.BILINEAR))


def _paste(src: np.ndarray, dst: np.ndarray, x0: int, y0: int, fill: int) -> None:
    """dst = src[y0:y0+h, x0:x0+w], `fill` where that window leaves src."""
    h, w = dst.shape[:2]
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(src.shape[1], x0 + w), min(src.shape[0], y0 + h)
    if sx1 <= sx0 or sy1 <= sy0:
        dst[...] = fill
        return
    if (sx0, sy0, sx1, sy1) != (x0, y0, x0 + w, y0 + h):
        dst[...] = fill
    dst[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = src[sy0:sy1, sx0:sx1]


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [..., 4] and b [..., 4] (x0, y0, x1, y1), broadcast."""
    x0 = np.maximum(a[..., 0], b[..., 0])
    y0 = np.maximum(a[..., 1], b[..., 1])
    x1 = np.minimum(a[..., 2], b[..., 2])
    y1 = np.minimum(a[..., 3], b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def face_score(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Larger and more central is better: area x (1 - distance to the frame centre / half diagonal)^2."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    dist = np.hypot(cx - width / 2, cy - height / 2) / (0.5 * np.hypot(width, height))
    return area * np.clip(1.0 - dist, 0.0, 1.0) ** 2


def interpolate_boxes(boxes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill the rows of boxes [T, 4] where valid is False by linear interpolation in time
    (nearest valid row at the ends). Needs at least one valid row."""
    t = np.arange(len(boxes))
    out = boxes.astype(np.float64).copy()
    for k in range(4):
        out[:, k] = np.interp(t, t[valid], boxes[valid, k])
    return out


def smooth_boxes(boxes: np.ndarray, alpha: float) -> np.ndarray:
    """Zero-phase exponential smoothing over time (mean of a forward and a backward pass)."""
    if alpha <= 0 or len(boxes) < 2:
        return boxes.copy()
    fwd, bwd = boxes.astype(np.float64).copy(), boxes.astype(np.float64).copy()
    for i in range(1, len(boxes)):
        fwd[i] = alpha * fwd[i - 1] + (1 - alpha) * boxes[i]
    for i in range(len(boxes) - 2, -1, -1):
        bwd[i] = alpha * bwd[i + 1] + (1 - alpha) * boxes[i]
    return (fwd + bwd) / 2


def square(box: np.ndarray) -> np.ndarray:
    """The square of side max(w, h) with the same centre (MTCNN's `rerec`)."""
    box = np.asarray(box, np.float64)
    cx, cy = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
    side = np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=-1)


def select_track(detections: dict[int, tuple[np.ndarray, np.ndarray]], width: int, height: int
                 ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """One face per frame, the same person throughout.

    `detections`: frame index -> (boxes [k, 4], points [k, 5, 2]) (k may be 0). The anchor is the
    detection with the best `face_score` over all frames; every other frame takes the detection
    that overlaps most (IoU >= MIN_IOU) with the box chosen on the nearest frame already decided,
    walking outwards from the anchor. Returns frame index -> (box [4], points [5, 2]).
    """
    best = None
    for index, (boxes, points) in detections.items():
        if len(boxes):
            scores = face_score(boxes, width, height)
            k = int(np.argmax(scores))
            if best is None or scores[k] > best[0]:
                best = (scores[k], index, k)
    if best is None:
        return {}
    _, anchor, k = best
    chosen = {anchor: (np.asarray(detections[anchor][0][k], np.float64), np.asarray(detections[anchor][1][k], np.float64))}
    for index in sorted(detections, key=lambda i: (abs(i - anchor), i)):
        if index == anchor or not len(detections[index][0]):
            continue
        nearest = min(chosen, key=lambda i: (abs(i - index), i))
        overlaps = iou(np.asarray(detections[index][0], np.float64), chosen[nearest][0][None])
        j = int(np.argmax(overlaps))
        if overlaps[j] >= MIN_IOU:
            chosen[index] = (np.asarray(detections[index][0][j], np.float64), np.asarray(detections[index][1][j], np.float64))
    return chosen


# --------------------------------------------------------------------------------------------
# The tracker
# --------------------------------------------------------------------------------------------


@dataclass
class FaceTrack:
    boxes: np.ndarray  # float64 [T, 4] face boxes in full-frame pixels, after smoothing
    landmarks: np.ndarray  # float32 [T, 5, 2] full-frame pixels (canonical where not detected)
    detected: np.ndarray  # bool [T]: the face was found on this frame
    probs: np.ndarray  # float32 [T]: O-net (or cascade) face probability, 0 where not detected

    @property
    def found(self) -> bool:
        return bool(self.detected.any())


class FaceTracker:
    """MTCNN (facenet-pytorch, bundled weights) used as detector on keyframes and tracker on all frames.

    Build one per process (each preprocessing worker builds its own).
    """

    def __init__(self, config: Optional[PreprocessConfig] = None, device: str | torch.device = "cpu"):
        from facenet_pytorch import MTCNN

        self.config = config or PreprocessConfig()
        self.device = torch.device(device)
        self.mtcnn = MTCNN(min_face_size=self.config.min_face_size, keep_all=True, post_process=False,
                           select_largest=False, device=self.device).eval()
        self.onet_threshold = self.mtcnn.thresholds[2]

    def warmup(self) -> "FaceTracker":
        """Run every net once on blank input (the first torch calls are slow); returns self."""
        blank = RgbFrames(np.zeros((2, 180, 320, 3), np.uint8))
        self.detect(blank, [0, 1])
        self.refine(blank, [0, 1], np.array([[100.0, 40, 160, 120]] * 2))
        return self

    # full cascade on small frames -------------------------------------------------------------
    def detect(self, source: FrameSource, indices: list[int], min_face: Optional[int] = None
               ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Full MTCNN on the downscaled frames `indices` (one batch); boxes and points in full-frame pixels.

        `min_face`: smallest face in pixels of the downscaled frame (default `config.min_face_size`).
        """
        if not indices:
            return {}
        small = np.stack([source.small(i, self.config.detect_max_side) for i in indices])
        scale = source.width / small.shape[2]
        self.mtcnn.min_face_size = int(min_face or self.config.min_face_size)
        with torch.inference_mode():
            boxes, _, points = self.mtcnn.detect(small, landmarks=True)
        out = {}
        for i, b, p in zip(indices, boxes, points):
            if b is None:
                out[i] = (np.zeros((0, 4)), np.zeros((0, 5, 2)))
            else:
                out[i] = (np.asarray(b, np.float64).reshape(-1, 4) * scale, np.asarray(p, np.float64).reshape(-1, 5, 2) * scale)
        return out

    # O-net on proposals ---------------------------------------------------------------------------
    def refine(self, source: FrameSource, indices: list[int], boxes: np.ndarray):
        """O-net on a 48x48 crop of the full frame around each box. Returns (probs, boxes, points).

        All crops of one call share one side (the median box side): the face keeps its scale over
        time and one swscale context serves the whole batch.
        """
        sq = square(boxes)
        side = _snap_side(float(np.median(sq[:, 2] - sq[:, 0])))
        crops, geo = [], []
        for i, b in zip(indices, sq):
            x0, y0 = _snap_origin(b, side)
            crops.append(source.crop(i, x0, y0, side, 48))
            geo.append((x0, y0))
        data = torch.from_numpy(np.stack(crops)).to(self.device).permute(0, 3, 1, 2).float()
        data = (data - 127.5) * 0.0078125
        with torch.inference_mode():
            reg, pts, prob = self.mtcnn.onet(data)
        reg, pts, prob = reg.cpu().numpy(), pts.cpu().numpy(), prob[:, 1].cpu().numpy()
        geo = np.asarray(geo, np.float64)
        x0, y0 = geo[:, 0], geo[:, 1]
        new = np.stack([x0 + reg[:, 0] * side, y0 + reg[:, 1] * side,
                        x0 + side + reg[:, 2] * side, y0 + side + reg[:, 3] * side], axis=1)
        points = np.stack([x0[:, None] + pts[:, :5] * side, y0[:, None] + pts[:, 5:] * side], axis=2)
        return prob, new, points

    def track(self, source: FrameSource) -> FaceTrack:
        """Detect on keyframes, track with O-net on every frame, fill and smooth (module docstring)."""
        T = len(source)
        cfg = self.config
        keyframes = sorted(set(np.linspace(0, T - 1, max(1, min(cfg.detect_keyframes, T))).round().astype(int).tolist()))
        # coarse to fine: faces of at least 1/5 of the frame first (3x cheaper), then down to min_face_size
        _, small_h = small_size(source.width, source.height, cfg.detect_max_side)
        coarse = max(cfg.min_face_size, small_h // 5)
        detections = self.detect(source, keyframes, coarse)
        chosen = select_track(detections, source.width, source.height)
        if not chosen and coarse > cfg.min_face_size:
            detections = self.detect(source, keyframes)
            chosen = select_track(detections, source.width, source.height)
        if not chosen:  # no face on the keyframes: try every frame before giving up
            detections.update(self.detect(source, [i for i in range(T) if i not in detections]))
            chosen = select_track(detections, source.width, source.height)
        if not chosen:
            return _faceless(source, T, cfg.face_margin)

        boxes = np.zeros((T, 4))
        points = np.zeros((T, 5, 2))
        probs = np.zeros(T, np.float32)
        ok = np.zeros(T, bool)
        for i, (b, p) in chosen.items():
            boxes[i], points[i], ok[i], probs[i] = b, p, True, 1.0
        proposals = interpolate_boxes(boxes, ok)

        # O-net on every frame; a second pass where the first moved the box a lot
        prob, new, pts = self.refine(source, list(range(T)), proposals)
        good = (prob >= self.onet_threshold) & (iou(new, proposals) >= MIN_IOU)
        again = np.flatnonzero(good & (iou(new, proposals) < 0.7))
        if again.size:
            prob2, new2, pts2 = self.refine(source, again.tolist(), new[again])
            keep = (prob2 >= self.onet_threshold) & (iou(new2, proposals[again]) >= MIN_IOU)
            prob[again[keep]], new[again[keep]], pts[again[keep]] = prob2[keep], new2[keep], pts2[keep]
        boxes[good], points[good], probs[good] = new[good], pts[good], prob[good]
        ok |= good

        lost = [i for i in range(T) if not ok[i]]
        if lost:  # the full cascade on the frames the tracker lost, batched
            for i, (b, p) in self.detect(source, lost).items():
                if len(b):
                    overlaps = iou(b, proposals[i][None])
                    j = int(np.argmax(overlaps))
                    if overlaps[j] >= MIN_IOU:
                        boxes[i], points[i], ok[i], probs[i] = b[j], p[j], True, 1.0

        filled = interpolate_boxes(boxes, ok)
        for i in np.flatnonzero(~ok):
            points[i] = canonical_in_box(filled[i])
        return FaceTrack(boxes=smooth_boxes(filled, cfg.box_smoothing), landmarks=points.astype(np.float32),
                         detected=ok, probs=probs)


def _faceless(source: FrameSource, T: int, margin: float) -> FaceTrack:
    """A centred square covering the middle of the frame, canonical landmarks, nothing detected."""
    side = min(source.width, source.height) / (1 + 2 * margin)
    cx, cy = source.width / 2, source.height / 2
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    boxes = np.repeat(box[None], T, axis=0)
    return FaceTrack(boxes=boxes, landmarks=np.stack([canonical_in_box(box)] * T),
                     detected=np.zeros(T, bool), probs=np.zeros(T, np.float32))


def _snap_side(side: float, multiple: int = 4) -> int:
    """A crop side usable on YUV 4:2:0 planes: a multiple of 4, at least 4."""
    return max(multiple, int(round(side / multiple)) * multiple)


def _snap_origin(box: np.ndarray, side: int) -> tuple[int, int]:
    """Even integer top-left corner of the square of `side` centred on `box`."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return int(round((cx - side / 2) / 2)) * 2, int(round((cy - side / 2) / 2)) * 2


def crop_box(box: np.ndarray, margin: float) -> np.ndarray:
    """The square crop region (x0, y0, x1, y1) for a face box: side max(w, h) * (1 + 2 * margin)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def crop_faces(source: FrameSource, track: FaceTrack, image_size: int = 224, margin: float = 0.25
               ) -> tuple[np.ndarray, np.ndarray]:
    """Face crops uint8 [T, 3, S, S] and landmarks float32 [T, 5, 2] in crop pixel coordinates.

    The crop follows the (smoothed) face centre frame by frame with one side for the whole clip
    (the median over frames), so the face keeps a constant scale over time.
    """
    T = len(source)
    origins, side = crop_regions(track, margin)
    crops = np.empty((T, 3, image_size, image_size), np.uint8)
    marks = np.empty((T, 5, 2), np.float32)
    for i, (x0, y0) in enumerate(origins):
        crops[i] = source.crop(i, x0, y0, side, image_size).transpose(2, 0, 1)
        marks[i] = (track.landmarks[i] - np.array([x0, y0])) * (image_size / side)
    return crops, marks


def crop_regions(track: FaceTrack, margin: float = 0.25) -> tuple[list[tuple[int, int]], int]:
    """Where `crop_faces` cuts each frame: the top-left corners [(x0, y0)] * T and the one side (frame pixels)."""
    regions = np.stack([crop_box(b, margin) for b in track.boxes])
    side = _snap_side(float(np.median(regions[:, 2] - regions[:, 0])))
    return [_snap_origin(region, side) for region in regions], side
