/**
 * Machine records -> what the API shows: the stored record plus what only the daemon knows now
 * (a pull's live byte counts, the main process's last known state).
 */
import type { MachineView } from "../core/ports/services.js";
import type { MachineRecord } from "../core/machine.js";
import type { SupervisionView } from "../core/health.js";
import type { ImagePulls } from "./image-pulls.js";
import type { MainProcesses } from "../workload/main-process.js";

/** A machine's proxy URLs (the daemon's proxy configuration decides them; none when it is off). */
export type ServiceUrls = (m: Pick<MachineRecord, "id" | "name" | "services">) => Pick<MachineView, "urls" | "nameUrl">;

export class MachineViews {
  constructor(
    private readonly pulls: ImagePulls | null,
    private readonly main: MainProcesses,
    private readonly urls: ServiceUrls = () => ({ urls: [], nameUrl: null }),
    private readonly supervision?: { view(rec: MachineRecord): SupervisionView },
  ) {}

  /** Without the main process (answers of lifecycle calls: the machine is not running yet, or any more). */
  plain(rec: MachineRecord): MachineView {
    return { ...rec, imagePull: this.pulls?.view(rec.id) ?? rec.imagePull, mainProcess: null, ...this.urls(rec), ...(this.supervision && { supervision: this.supervision.view(rec) }) };
  }

  /** With the main process's state as last seen (cached: no guest is read here). */
  full(rec: MachineRecord): MachineView {
    return { ...this.plain(rec), mainProcess: this.main.state(rec) };
  }
}
