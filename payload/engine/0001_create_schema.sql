-- engine schema, version 1
CREATE TABLE vdc_options (
    option_name  text PRIMARY KEY,
    option_value text NOT NULL
);
CREATE TABLE storage_pool (
    id            serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    storage_type  text NOT NULL
);
INSERT INTO storage_pool (name, storage_type) VALUES ('Default', 'nfs');
