/**
 * Machine records -> what the API shows: the stored record plus what only the daemon knows now
 * (a pull's live byte counts, the main process's state read from the guest).
 */
import type { MachineView } from "../core/ports/services.js";
import type { MachineRecord } from "../core/machine.js";
import type { ImagePulls } from "./image-pulls.js";
import type { LiveVms } from "./live-vms.js";
import type { MainProcesses } from "../workload/main-process.js";

export class MachineViews {
  constructor(
    private readonly pulls: () => ImagePulls | null,
    private readonly main: MainProcesses,
    private readonly live: LiveVms,
  ) {}

  /** Without the main process (answers of lifecycle calls: the machine is not running yet, or any more). */
  plain(rec: MachineRecord): MachineView {
    return { ...rec, imagePull: this.pulls()?.view(rec.id) ?? rec.imagePull, mainProcess: null };
  }

  /** With the main process's state, read from the guest when the machine runs one. */
  async full(rec: MachineRecord): Promise<MachineView> {
    return { ...this.plain(rec), mainProcess: await this.main.state(rec, this.live.get(rec.id)) };
  }
}
