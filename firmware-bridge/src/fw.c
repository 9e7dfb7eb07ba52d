/* placeholder: written by the firmware-bridge work */
