export * from "./store.js";
export * from "../core/machine.js";
export { MachineRepository, type Clock } from "./machine-repository.js";
export { ApiKeyRepository, type StoredApiKey } from "./api-key-repository.js";
export { NetworkSlotRepository, type SlotLease, type SlotPicker } from "./network-slot-repository.js";
export { SnapshotRepository } from "./snapshot-repository.js";
export { VolumeRepository } from "./volume-repository.js";
