// The submit form's payload fields, generated from a job type's JSON Schema: a field per property
// for strings, numbers, integers, booleans, enums and nested objects, a JSON text area for
// anything else (arrays, maps, unions, a free-form object).

import { el, format } from "./dom.js";

// The schema with its local $ref and single-entry allOf folded in (as pydantic writes them).
function resolve(schema, root) {
  let current = schema || {};
  for (let depth = 0; depth < 10; depth++) {
    if (current.$ref && current.$ref.startsWith("#/")) {
      const target = current.$ref
        .slice(2)
        .split("/")
        .reduce((node, key) => (node ? node[key] : undefined), root);
      const { $ref, ...rest } = current;
      current = { ...(target || {}), ...rest };
    } else if (Array.isArray(current.allOf) && current.allOf.length === 1) {
      const { allOf, ...rest } = current;
      current = { ...allOf[0], ...rest };
    } else {
      break;
    }
  }
  return current;
}

function kindOf(schema, root) {
  const resolved = resolve(schema, root);
  const values = resolved.enum;
  if (Array.isArray(values) && values.every((v) => v === null || typeof v !== "object")) {
    return { kind: "enum", schema: resolved };
  }
  const options = resolved.anyOf || resolved.oneOf;
  if (Array.isArray(options)) {
    const real = options.filter((option) => resolve(option, root).type !== "null");
    if (real.length === 1 && real.length < options.length) {
      const inner = kindOf(real[0], root);
      const merged = {
        ...inner.schema,
        title: resolved.title,
        description: resolved.description,
        default: resolved.default,
      };
      return inner.kind === "json"
        ? { kind: "json", schema: resolved }
        : { kind: inner.kind, schema: merged, nullable: true };
    }
    return { kind: "json", schema: resolved };
  }
  const type = resolved.type;
  if (type === "string" || type === "number" || type === "integer" || type === "boolean") {
    return { kind: type, schema: resolved };
  }
  if (type === "object" && resolved.properties && Object.keys(resolved.properties).length) {
    return { kind: "object", schema: resolved };
  }
  return { kind: "json", schema: resolved };
}

// A field: {node, read() -> {value} | {omit: true} | {error}}
function buildField(schema, path, required, root) {
  const { kind, schema: resolved } = kindOf(schema, root);
  const name = ["payload", ...path].join(".");
  const labelText = path[path.length - 1] || "payload";
  const hint = resolved.description
    ? el("small", { className: "muted", text: resolved.description })
    : null;
  const label = (control) =>
    el(
      "label",
      { className: `field field-${kind}` },
      el(
        "span",
        { className: "field-name", text: labelText },
        required ? el("abbr", { title: "required", text: " *" }) : null,
      ),
      control,
      hint,
    );

  if (kind === "object") {
    const requiredNames = new Set(resolved.required || []);
    const children = Object.entries(resolved.properties).map(([key, child]) => [
      key,
      buildField(child, [...path, key], requiredNames.has(key), root),
    ]);
    const nodes = children.map(([, field]) => field.node);
    const node = path.length
      ? el("fieldset", { className: "nested" }, el("legend", { text: labelText }), hint, ...nodes)
      : el("div", {}, ...nodes);
    return {
      node,
      read() {
        const value = {};
        for (const [key, field] of children) {
          const read = field.read();
          if (read.error) return read;
          if (!read.omit) value[key] = read.value;
        }
        if (!required && path.length && Object.keys(value).length === 0) return { omit: true };
        return { value };
      },
    };
  }

  if (kind === "enum") {
    const values = resolved.enum;
    const select = el(
      "select",
      { name },
      required ? null : el("option", { value: "", text: "—" }),
      ...values.map((value, index) =>
        el("option", { value: String(index), text: value === null ? "null" : String(value) }),
      ),
    );
    const fallback = values.indexOf(resolved.default);
    select.value = fallback >= 0 ? String(fallback) : required ? "0" : "";
    return {
      node: label(select),
      read: () =>
        select.value === "" ? { omit: true } : { value: values[Number(select.value)] },
    };
  }

  if (kind === "boolean") {
    const box = el("input", { type: "checkbox", name });
    box.checked = resolved.default === true;
    return { node: label(box), read: () => ({ value: box.checked }) };
  }

  if (kind === "number" || kind === "integer") {
    const min = resolved.minimum ?? resolved.exclusiveMinimum;
    const max = resolved.maximum ?? resolved.exclusiveMaximum;
    const step = kind === "integer" ? "1" : "any";
    const input = el("input", { type: "number", name, step, min, max });
    if (typeof resolved.default === "number") input.value = String(resolved.default);
    return {
      node: label(input),
      read() {
        if (input.value.trim() === "") return { omit: true };
        const value = Number(input.value);
        if (!Number.isFinite(value) || (kind === "integer" && !Number.isInteger(value))) {
          return { error: `${name}: not ${kind === "integer" ? "an integer" : "a number"}` };
        }
        return { value };
      },
    };
  }

  if (kind === "string") {
    const formatName = resolved.format;
    const type = formatName === "uri" ? "url" : formatName === "email" ? "email" : "text";
    const input = el("input", {
      type,
      name,
      minlength: resolved.minLength,
      maxlength: resolved.maxLength,
      placeholder: formatName || "",
    });
    if (typeof resolved.default === "string") input.value = resolved.default;
    return {
      node: label(input),
      read: () => (input.value === "" ? { omit: true } : { value: input.value }),
    };
  }

  // Anything else (arrays, maps, unions, a free-form object): JSON text.
  const area = el("textarea", {
    name,
    rows: path.length ? 3 : 8,
    spellcheck: "false",
    className: "mono",
  });
  if (resolved.default !== undefined) area.value = format.json(resolved.default);
  else if (!path.length) area.value = "{}";
  return {
    node: label(area),
    read() {
      if (area.value.trim() === "") {
        return path.length && !required ? { omit: true } : { error: `${name}: JSON needed` };
      }
      try {
        return { value: JSON.parse(area.value) };
      } catch (error) {
        return { error: `${name}: not valid JSON (${error.message})` };
      }
    },
  };
}

// The payload's fields for a type's input schema: {node, read()} as above, the schema its own
// root for $ref.
export function buildForm(schema) {
  return buildField(schema, [], true, schema);
}
