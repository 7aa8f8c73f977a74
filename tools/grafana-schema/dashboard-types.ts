// The shape a dashboard file under dashboards/ must have, from Grafana's published schema
// (@grafana/schema). tests/test_dashboards.py writes each dashboard into a .ts file as
// `const dashboard: DashboardFile = <the JSON>;` and runs tsc: any unknown key, missing required
// option, wrong enum value or panel type without a schema here is a type error.
import type {
  AnnotationQuery,
  Dashboard,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
} from "grafana-dashboard";
import type * as Stat from "grafana-panel-stat";
import type * as Table from "grafana-panel-table";
import type * as TimeSeries from "grafana-panel-timeseries";

// JSON carries enum values as plain strings: accept a string enum's values (not its TS identity).
export type Loose<T> = T extends string
  ? `${T}`
  : T extends ReadonlyArray<infer U>
    ? Array<Loose<U>>
    : T extends object
      ? { [K in keyof T]: Loose<T[K]> }
      : T;

type FieldConfigSourceOf<Custom> = Omit<Loose<FieldConfigSource>, "defaults"> & {
  defaults: Omit<Loose<FieldConfig>, "custom"> & { custom?: Custom };
};

type PanelOf<Type extends string, Options, Custom> = Omit<Loose<Panel>, "type" | "options" | "fieldConfig"> & {
  type: Type;
  options: Loose<Options>;
  fieldConfig: FieldConfigSourceOf<Custom>;
};

// Only the panel types the dashboards use: a new type must bring its schema here.
export type KnownPanel =
  | PanelOf<"stat", Stat.Options, Record<string, never>>
  | PanelOf<"table", Table.Options, Loose<Table.FieldConfig>>
  | PanelOf<"timeseries", TimeSeries.Options, Loose<TimeSeries.FieldConfig>>;

type Row = Omit<Loose<RowPanel>, "panels"> & { panels: KnownPanel[] };

// The schema types `target` for the built-in Grafana annotation source only; a datasource's
// annotation (Prometheus: expr, step, titleFormat, tagKeys, ...) keeps its query fields beside.
type DatasourceAnnotation = Loose<AnnotationQuery> & Record<string, unknown>;

export type DashboardFile = Omit<Loose<Dashboard>, "annotations" | "panels"> & {
  annotations: { list: DatasourceAnnotation[] };
  panels: Array<KnownPanel | Row>;
};
