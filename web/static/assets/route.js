// The demo's fixed route, and its drawing in the page's inline SVG.

/** points are the route's steps, in the SVG's coordinates (400 × 240). */
export const points = [
  [30, 200], [70, 200], [110, 190], [140, 160], [170, 130],
  [210, 120], [250, 120], [280, 95], [310, 70], [340, 50], [370, 40],
];

/** pickup is the index of the step where the rider is picked up. */
export const pickup = 4;

/** last is the index of the destination. */
export const last = points.length - 1;

/** states are the trip's states, in order. */
export const states = ["accepted", "arriving", "picked up", "on the way", "arrived"];

const svgNS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** draw draws the route into the SVG element and returns a function that moves the car to a step. */
export function draw(node) {
  const line = points.map((p) => p.join(",")).join(" ");
  node.append(
    svg("polyline", { points: line, class: "route" }),
    svg("circle", { cx: points[pickup][0], cy: points[pickup][1], r: 7, class: "pickup" }),
    svg("rect", { x: points[last][0] - 7, y: points[last][1] - 7, width: 14, height: 14, class: "destination" }),
  );
  const label = (p, text, dy, anchor = "middle") => {
    const t = svg("text", { x: p[0], y: p[1] + dy, class: "label", "text-anchor": anchor });
    t.textContent = text;
    return t;
  };
  node.append(label(points[0], "start", 24), label(points[pickup], "pickup", 24), label(points[last], "destination", 24, "end"));
  const car = svg("circle", { cx: points[0][0], cy: points[0][1], r: 9, class: "car" });
  const title = svg("title", {});
  car.append(title);
  node.append(car);
  return (step) => {
    const p = points[Math.max(0, Math.min(last, step))];
    car.setAttribute("cx", p[0]);
    car.setAttribute("cy", p[1]);
    title.textContent = `the car, at step ${step} of ${last}`;
  };
}
