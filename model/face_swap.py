"""Texture editing and face swapping: a UV texture drawn onto a face's geometry (its position map)
and blended into its image, colours matched where both faces are visible (frames: model.uses)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from model.uses import FaceUV, dense_vertices, fill_gaps, uv_texture
from model.visibility import render_raster, uv_visibility
from uvgen.raster import Rasterization

#: Width (pixels) of the alpha ramp at the edge of a pasted face.
FEATHER_PX = 6.0


def feather_alpha(mask: np.ndarray, feather_px: float = FEATHER_PX) -> np.ndarray:
    """(h, w) float32 alpha: 0 outside ``mask``, rising linearly with the distance to the mask's
    edge to 1 at ``feather_px`` pixels inside (a simple feather in place of Poisson blending)."""
    m = np.asarray(mask, dtype=bool)
    if feather_px <= 0:
        return m.astype(np.float32)
    dist = ndimage.distance_transform_edt(m)
    return np.clip(dist / float(feather_px), 0.0, 1.0).astype(np.float32)


def match_colors(texture: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float32 copy of ``texture`` (S, S, 3) whose per-channel mean and standard deviation over
    ``mask`` equal those of ``reference`` (a simple colour transfer before pasting a face)."""
    tex = np.asarray(texture, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if m.sum() < 2:
        return tex.copy()
    mu_t, sd_t = tex[m].mean(axis=0), tex[m].std(axis=0)
    mu_r, sd_r = ref[m].mean(axis=0), ref[m].std(axis=0)
    gain = np.where(sd_t > 1e-6, sd_r / np.maximum(sd_t, 1e-6), 1.0)
    return (tex - mu_t) * gain + mu_r


def paint_texture(
    image: np.ndarray,
    posmap: np.ndarray,
    texture: np.ndarray,
    uv: FaceUV,
    valid: np.ndarray | None = None,
    feather_px: float = FEATHER_PX,
    raster: Rasterization | None = None,
) -> np.ndarray:
    """Draw a UV ``texture`` (S, S, 3) onto the face of ``posmap`` (image pixels) and blend it
    into ``image`` (H, W, 3) uint8; returns a new uint8 image (texture editing: edit the face's
    own :func:`uv_texture` and paint it back; face swapping: paint another face's texture).

    The face's mesh is rendered with a z-buffer (only its front surface shows); each covered pixel
    takes the texture interpolated over the triangle's UV pixels. ``valid`` (S, S) bool marks the
    texture pixels that hold colour (default: the face mask); the pasted region is where the
    interpolated validity is at least 1/2, and the alpha is :func:`feather_alpha` of that region,
    so pixels outside it are left exactly as they were.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    verts = dense_vertices(posmap, uv)
    if raster is None:
        raster = render_raster(verts, uv.triangles, h, w)
    tex = np.asarray(texture, dtype=np.float64).reshape(-1, 3)[uv.face_ind]
    ok = uv.face_mask if valid is None else np.asarray(valid, dtype=bool) & uv.face_mask
    ok_v = ok.ravel()[uv.face_ind].astype(np.float64)
    values = raster.interpolate(np.hstack([tex * ok_v[:, None], ok_v[:, None]]))
    weight = values[..., 3]
    region = raster.mask & (weight >= 0.5)
    colour = values[..., :3] / np.maximum(weight, 1e-9)[..., None]
    alpha = feather_alpha(region, feather_px)[..., None]
    out = img.astype(np.float32) * (1 - alpha) + np.clip(colour, 0, 255) * alpha
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    out[~region] = img[~region]  # bit-exact outside the pasted region
    return out


def swap_face(
    source_image: np.ndarray,
    source_posmap: np.ndarray,
    target_image: np.ndarray,
    target_posmap: np.ndarray,
    uv: FaceUV,
    feather_px: float = FEATHER_PX,
    colour_match: bool = True,
) -> np.ndarray:
    """The source face's UV texture drawn onto the target face's geometry and blended into the
    target image (uint8, the target's size). Only texture pixels visible in the source (and read
    from face pixels only: ``solid``) are used, elsewhere the target keeps its own face. With
    ``colour_match`` the source texture first takes the target's colour statistics over the pixels
    visible in both (:func:`match_colors`)."""
    sh, sw = np.asarray(source_image).shape[:2]
    th, tw = np.asarray(target_image).shape[:2]
    source_posmap, target_posmap = fill_gaps(source_posmap, uv), fill_gaps(target_posmap, uv)
    src_vis = uv_visibility(source_posmap, uv, sh, sw, solid=True)
    src_tex = uv_texture(source_image, source_posmap, uv.face_mask, src_vis).astype(np.float32)
    target_raster = render_raster(dense_vertices(target_posmap, uv), uv.triangles, th, tw)
    if colour_match:
        tgt_vis = uv_visibility(target_posmap, uv, th, tw, raster=target_raster)
        tgt_tex = uv_texture(target_image, target_posmap, uv.face_mask, tgt_vis)
        src_tex = match_colors(src_tex, tgt_tex, src_vis & tgt_vis)
    return paint_texture(
        target_image,
        target_posmap,
        src_tex,
        uv,
        valid=src_vis,
        feather_px=feather_px,
        raster=target_raster,
    )
