// The report's viewer: NiiVue (inlined above as `esm`, its URL-encoded ES module bundle) on
// the embedded 8-bit image and label. State for people and tests in #viewer's data attributes:
// data-state (loading, ready, error), data-slice (axial slice k shown), data-error, data-rect
// (the planes' canvas: x, y, width, height in CSS pixels from the page's top left).
const root = document.getElementById("viewer");
const status = document.getElementById("viewer-status");
const data = JSON.parse(document.getElementById("viewer-data").textContent);
function fail(e) {
  root.dataset.state = "error";
  root.dataset.error = String(e && e.message ? e.message : e);
  status.textContent = "The viewer could not start: " + root.dataset.error;
}
try {
  const url = URL.createObjectURL(new Blob([decodeURIComponent(esm)], { type: "text/javascript" }));
  const { Niivue, NVImage, SHOW_RENDER, SLICE_TYPE } = await import(url);
  URL.revokeObjectURL(url);
  const b64 = (id) => document.getElementById(id).textContent.trim();
  // Label colours; liverAlpha 0 hides the liver (the 3D view's switch shows the lesions inside).
  const lut = (liverAlpha) => ({
    R: [0, data.liver[0], data.lesion[0]],
    G: [0, data.liver[1], data.lesion[1]],
    B: [0, data.liver[2], data.lesion[2]],
    A: [0, liverAlpha, 255],
    I: [0, 1, 2],
    labels: ["", "liver", "lesion"],
  });
  const load = async (id, name) => NVImage.loadFromBase64({ base64: b64(id), name });
  const [image, label, label3d] = await Promise.all([
    load("viewer-image", "image.nii.gz"),
    load("viewer-label", "label.nii.gz"),
    load("viewer-label", "label3d.nii.gz"),
  ]);
  const common = {
    backColor: [0, 0, 0, 1],
    isRadiologicalConvention: true,
    dragAndDropEnabled: false,
    isColorbar: false,
    show3Dcrosshair: true,
    loadingText: "",
  };
  // Planes: the image with the label over it.
  const planes = new Niivue({ ...common, multiplanarShowRender: SHOW_RENDER.NEVER });
  await planes.attachToCanvas(document.getElementById("viewer-planes"));
  image.colormap = "gray";
  image.cal_min = 0;
  image.cal_max = 255;
  label.setColormapLabel(lut(255));
  label.opacity = 0.5;
  planes.addVolume(image);
  planes.addVolume(label);
  // Axial large on the left; coronal and sagittal stacked on the right.
  planes.setCustomLayout([
    { sliceType: SLICE_TYPE.AXIAL, position: [0, 0, 0.6, 1] },
    { sliceType: SLICE_TYPE.CORONAL, position: [0.6, 0, 0.4, 0.5] },
    { sliceType: SLICE_TYPE.SAGITTAL, position: [0.6, 0.5, 0.4, 0.5] },
  ]);
  planes.setSliceType(SLICE_TYPE.MULTIPLANAR);
  // Start on the largest lesion (else the liver) at its largest slice.
  planes.scene.crosshairPos = planes.mm2frac(data.start_mm);
  planes.drawScene();
  // 3D: the label alone, volume-rendered.
  const render = new Niivue({ ...common });
  await render.attachToCanvas(document.getElementById("viewer-3d"));
  label3d.setColormapLabel(lut(255));
  render.addVolume(label3d);
  render.setSliceType(SLICE_TYPE.RENDER);
  render.setRenderAzimuthElevation(180, 20);
  render.setScale(1.5);
  render.scene.crosshairPos = planes.scene.crosshairPos;
  render.drawScene();
  const liver3d = document.getElementById("viewer-liver3d");
  liver3d.addEventListener("change", () => {
    label3d.setColormapLabel(lut(liver3d.checked ? 255 : 0));
    render.updateGLVolume();
  });
  const nk = image.dims[3];
  const show = () => {
    const k = Math.round(image.mm2vox(planes.frac2mm(planes.scene.crosshairPos))[2]);
    root.dataset.slice = k;
    status.textContent = `Axial slice ${k} of 0-${nk - 1}` +
      (data.factor > 1 ? ` (shown at 1/${data.factor} of the in-plane resolution)` : "");
  };
  planes.onLocationChange = () => {
    show();
    render.scene.crosshairPos = planes.scene.crosshairPos;
    render.drawScene();
  };
  show();
  // Test hook: `#viewer-scroll=N` turns the wheel N notches over the axial plane once ready.
  const m = location.hash.match(/viewer-scroll=(-?\d+)/);
  if (m) {
    const canvas = planes.canvas;
    const tile = planes.screenSlices.find((s) => s.axCorSag === SLICE_TYPE.AXIAL);
    const r = canvas.getBoundingClientRect();
    const dpr = canvas.width / r.width;
    const [l, t, w, h] = tile.leftTopWidthHeight;
    const n = Number(m[1]);
    for (let i = 0; i < Math.abs(n); i++) {
      canvas.dispatchEvent(new WheelEvent("wheel", {
        deltaY: n > 0 ? -100 : 100,
        clientX: r.left + (l + w / 2) / dpr,
        clientY: r.top + (t + h / 2) / dpr,
        bubbles: true,
        cancelable: true,
      }));
    }
    show();
  }
  const r = planes.canvas.getBoundingClientRect();
  root.dataset.rect = [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.floor).join(",");
  root.dataset.state = "ready";
} catch (e) {
  fail(e);
}
