-- engine schema, version 2: default options
INSERT INTO vdc_options (option_name, option_value) VALUES
    ('ApplicationMode', 'both'),
    ('SSLEnabled', 'true');
